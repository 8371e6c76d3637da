"""Time-based triggers fire at most once per ticket, rule and window."""

from __future__ import annotations

from datetime import timedelta

import pytest

from automation.rules.models import RuleFiring
from automation.rules.testing import make_rule, rule_runs, run, wire
from automation.rules.timers import run_time_rules, run_time_rules_periodically
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.ingest import ingest_message
from helpdesk.models import Ticket, TicketStatus, utcnow
from helpdesk.operations.messages import reply_to_ticket
from helpdesk.operations.tickets import set_status
from tests.factories import inbound


@pytest.fixture
def app(app):
    return wire(app)


@pytest.fixture
def agent(make_user):
    return make_user("agent", name="Sam Support")


def pending_rule(hours=24):
    return make_rule(
        {
            "name": "Chase pending",
            "trigger": {"type": "ticket.pending_for", "hours": hours},
            "actions": [
                {"type": "note", "body": "Pending for a day; chase {{ contact.first_name }}."}
            ],
        }
    )


def test_pending_for_fires_once_per_pending_window(make_ticket, agent):
    rule = pending_rule()
    ticket = make_ticket()
    actor = Actor.for_user(agent)
    set_status(ticket, TicketStatus.PENDING, actor=actor)
    db.session.commit()
    now = utcnow()
    assert run_time_rules(now + timedelta(hours=23)) == 0
    assert run_time_rules(now + timedelta(hours=25)) == 1
    assert run_time_rules(now + timedelta(hours=26)) == 0  # same window
    assert db.session.query(RuleFiring).count() == 1
    # Back to open and pending again: a new window.
    set_status(ticket, TicketStatus.OPEN, actor=actor)
    db.session.commit()
    set_status(ticket, TicketStatus.PENDING, actor=actor)
    db.session.commit()
    assert run_time_rules(now + timedelta(hours=50)) == 1
    assert len(rule_runs(rule)) == 2


def test_pending_for_ignores_tickets_no_longer_pending(make_ticket, agent):
    pending_rule()
    ticket = make_ticket()
    set_status(ticket, TicketStatus.PENDING, actor=Actor.for_user(agent))
    set_status(ticket, TicketStatus.SOLVED, actor=Actor.for_user(agent))
    db.session.commit()
    assert run_time_rules(utcnow() + timedelta(days=3)) == 0


def test_time_rule_conditions_are_checked(make_ticket, agent):
    make_rule(
        {
            "name": "Only urgent",
            "trigger": {"type": "ticket.pending_for", "hours": 1},
            "conditions": {
                "all": [{"field": "ticket.priority", "operator": "is", "value": "urgent"}]
            },
            "actions": [{"type": "set_tags", "add": ["x"]}],
        }
    )
    ticket = make_ticket()
    set_status(ticket, TicketStatus.PENDING, actor=Actor.for_user(agent))
    db.session.commit()
    assert run_time_rules(utcnow() + timedelta(hours=2)) == 0
    assert db.session.query(RuleFiring).count() == 0


def test_no_customer_reply_fires_once_per_unanswered_agent_reply(app, agent, recording_channel):
    rule = make_rule(
        {
            "name": "Nudge",
            "trigger": {"type": "ticket.no_customer_reply", "days": 3},
            "actions": [{"type": "set_tags", "add": ["nudged"]}],
        }
    )
    ticket = ingest_message(inbound("Help", sender="quiet@example.test")).ticket
    db.session.commit()
    reply_to_ticket(ticket, actor=Actor.for_user(agent), author=agent, body="Does this help?")
    db.session.commit()
    now = utcnow()
    assert run_time_rules(now + timedelta(days=2)) == 0
    assert run_time_rules(now + timedelta(days=4)) == 1
    assert run_time_rules(now + timedelta(days=5)) == 0
    # The customer answers: nothing is waiting on them any more.
    ingest_message(inbound("Not really", sender="quiet@example.test"))
    db.session.commit()
    assert run_time_rules(now + timedelta(days=9)) == 0
    # A new agent reply opens a new window.
    reply_to_ticket(
        db.session.get(Ticket, ticket.id),
        actor=Actor.for_user(agent),
        author=agent,
        body="Try this",
    )
    db.session.commit()
    assert run_time_rules(utcnow() + timedelta(days=4)) == 1
    assert len(rule_runs(rule)) == 2


def test_the_periodic_job_runs_the_check(make_ticket, agent):
    pending_rule(hours=0.0001)
    ticket = make_ticket()
    set_status(ticket, TicketStatus.PENDING, actor=Actor.for_user(agent))
    db.session.commit()
    import time

    time.sleep(0.5)
    assert run(run_time_rules_periodically) == 1
    assert run(run_time_rules_periodically) == 0
