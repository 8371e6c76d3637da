"""Webhook actions: signed with the rule's secret, sent after commit, retried with backoff."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from automation.rules.models import WebhookDelivery
from automation.rules.testing import make_rule, run, webhook_receiver, wire
from automation.rules.webhooks import MAX_ATTEMPTS, send_webhook, sweep_webhooks
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import TicketStatus
from helpdesk.operations.tickets import set_status


@pytest.fixture
def app(app):
    return wire(app)


def hook_rule(url):
    return make_rule(
        {
            "name": "Tell the CRM",
            "trigger": "ticket.solved",
            "actions": [{"type": "webhook", "url": url}],
        }
    )


def solve(ticket):
    set_status(ticket, TicketStatus.SOLVED, actor=Actor.system("test"))
    db.session.commit()


def delivery():
    db.session.expire_all()
    return db.session.query(WebhookDelivery).one()


def test_webhook_body_is_signed_with_the_rules_secret(make_ticket):
    with webhook_receiver() as hook:
        rule = hook_rule(hook.url)
        ticket = make_ticket()
        solve(ticket)
        [request] = hook.requests
    expected = (
        "sha256=" + hmac.new(rule.webhook_secret.encode(), request.body, hashlib.sha256).hexdigest()
    )
    assert request.headers["X-Rapport-Signature"] == expected
    assert request.json["event"] == "ticket.solved"
    assert request.json["ticket"]["id"] == ticket.id
    assert request.json["rule"] == {"id": rule.id, "name": "Tell the CRM", "version": 1}
    assert delivery().status == "sent"


def test_a_tampered_body_does_not_verify(make_ticket):
    with webhook_receiver() as hook:
        rule = hook_rule(hook.url)
        solve(make_ticket())
        [request] = hook.requests
    forged = request.body.replace(b"ticket.solved", b"ticket.closed")
    signature = (
        "sha256=" + hmac.new(rule.webhook_secret.encode(), forged, hashlib.sha256).hexdigest()
    )
    assert signature != request.headers["X-Rapport-Signature"]


def test_nothing_is_sent_when_the_rule_run_rolls_back(make_ticket):
    with webhook_receiver() as hook:
        hook_rule(hook.url)
        ticket = make_ticket()
        set_status(ticket, TicketStatus.SOLVED, actor=Actor.system("test"))
        db.session.rollback()
        assert hook.requests == []


def test_server_errors_are_retried_with_backoff_until_sent(make_ticket):
    with webhook_receiver() as hook:
        hook.statuses = [500, 503]
        hook_rule(hook.url)
        solve(make_ticket())
        first = delivery()
        assert first.status == "queued" and first.attempts == 1
        assert "HTTP 500" in first.error and first.next_attempt_at is not None
        assert run(send_webhook, first.id) == "retrying"
        assert run(send_webhook, first.id) == "sent"
        assert [r.headers["X-Rapport-Attempt"] for r in hook.requests] == ["1", "2", "3"]
        assert len({r.headers["X-Rapport-Delivery"] for r in hook.requests}) == 1
        assert len({r.body for r in hook.requests}) == 1
    assert delivery().status == "sent" and delivery().error is None


def test_a_client_error_is_not_retried(make_ticket):
    with webhook_receiver() as hook:
        hook.statuses = [410]
        hook_rule(hook.url)
        solve(make_ticket())
    assert delivery().status == "failed" and delivery().error == "HTTP 410"


def test_gives_up_after_the_maximum_attempts(make_ticket):
    with webhook_receiver() as hook:
        hook.statuses = [500] * MAX_ATTEMPTS
        hook_rule(hook.url)
        solve(make_ticket())
        for _ in range(MAX_ATTEMPTS - 1):
            run(send_webhook, delivery().id)
    assert delivery().status == "failed" and "gave up" in delivery().error


def test_unreachable_receiver_is_retried_and_the_sweep_sends_when_due(make_ticket):
    with webhook_receiver() as hook:
        url = hook.url
    hook_rule(url)  # nothing listens there any more
    solve(make_ticket())
    assert delivery().status == "queued" and "Connection refused" in delivery().error
    with webhook_receiver() as hook:
        item = delivery()
        item.url = hook.url
        item.next_attempt_at = item.next_attempt_at.replace(year=2000)
        db.session.commit()
        assert run(sweep_webhooks) == 1
        assert len(hook.requests) == 1
    assert delivery().status == "sent"


def test_a_second_job_for_a_sent_webhook_does_nothing(make_ticket):
    with webhook_receiver() as hook:
        hook_rule(hook.url)
        solve(make_ticket())
        assert run(send_webhook, delivery().id) == "skipped"
        assert len(hook.requests) == 1
