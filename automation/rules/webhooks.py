"""Send webhook calls rules queued: signed, after commit, retried with backoff.

The body is JSON; ``X-Rapport-Signature: sha256=<hex>`` is the HMAC-SHA256 of
the exact body bytes with the rule's secret, so a receiver can verify it came
from us and was not altered. Each call carries ``X-Rapport-Delivery`` (stable
across retries) so a receiver can drop repeats.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from helpdesk.extensions import db
from helpdesk.jobs import job, periodic
from helpdesk.models import utcnow
from helpdesk.rows import changed_rows

from . import events as rule_events
from .actions import sign
from .models import Rule, WebhookDelivery

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
BACKOFF_BASE = 30  # seconds: 30 s, 2 min, 8 min, 32 min, ~2 h
TIMEOUT = 10
SIGNATURE_HEADER = "X-Rapport-Signature"
STALE_SENDING = timedelta(minutes=10)


def backoff_seconds(attempt: int) -> int:
    return int(BACKOFF_BASE * 4 ** max(attempt - 1, 0))


@rule_events.webhook_queued.connect
def _send_after_commit(sender: Any, event: rule_events.WebhookQueued, **_: Any) -> None:
    send_webhook(event.delivery_id)


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@job()
def send_webhook(delivery_id: int) -> str:
    """Make one attempt at a queued webhook call; returns the resulting status."""
    claimed = changed_rows(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "queued")
        .values(status="sending", attempts=WebhookDelivery.attempts + 1)
    )
    db.session.commit()
    if not claimed:
        return "skipped"
    delivery = db.session.get(WebhookDelivery, delivery_id)
    assert delivery is not None
    rule = db.session.get(Rule, delivery.rule_id)
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Rapport-Webhooks/1",
        SIGNATURE_HEADER: sign(rule.webhook_secret if rule else "", body),
        "X-Rapport-Delivery": str(delivery.id),
        "X-Rapport-Attempt": str(delivery.attempts),
    }
    url = delivery.url
    db.session.commit()  # no transaction held during the network call
    error: str | None = None
    status_code: int | None = None
    try:
        status_code = _post(url, body, headers)
    except Exception as exc:  # network down, refused, timeout
        error = f"{exc.__class__.__name__}: {exc}"
    delivery = db.session.get(WebhookDelivery, delivery_id)
    assert delivery is not None
    delivery.response_status = status_code
    if status_code is not None and 200 <= status_code < 300:
        delivery.status = "sent"
        delivery.sent_at = utcnow()
        delivery.error = None
        delivery.next_attempt_at = None
        db.session.commit()
        return "sent"
    error = error or f"HTTP {status_code}"
    permanent = (
        status_code is not None and 400 <= status_code < 500 and status_code not in (408, 429)
    )
    if permanent or delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = "failed"
        delivery.error = (
            error if permanent else f"gave up after {delivery.attempts} attempts: {error}"
        )
        delivery.next_attempt_at = None
        db.session.commit()
        return "failed"
    delay = backoff_seconds(delivery.attempts)
    delivery.status = "queued"
    delivery.error = f"attempt {delivery.attempts} failed: {error}; retrying in {delay}s"
    delivery.next_attempt_at = utcnow() + timedelta(seconds=delay)
    db.session.commit()
    log.warning("webhook %s to %s failed: %s", delivery_id, url, error)
    send_webhook.schedule((delivery_id,), delay=delay)
    return "retrying"


def sweep_webhooks() -> int:
    """Re-send webhook calls whose retry is due but whose job was lost; settle stuck sends."""
    now = utcnow()
    db.session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.status == "sending",
            WebhookDelivery.created_at <= now - STALE_SENDING,
        )
        .values(status="queued", next_attempt_at=now)
    )
    due = db.session.scalars(
        select(WebhookDelivery.id).where(
            WebhookDelivery.status == "queued",
            WebhookDelivery.next_attempt_at.is_not(None),
            WebhookDelivery.next_attempt_at <= now - timedelta(minutes=1),
        )
    ).all()
    db.session.commit()
    for delivery_id in due:
        send_webhook(delivery_id)
    return len(due)


@periodic(minute="*/5")
def sweep_webhooks_periodically() -> int:
    """Every five minutes: the safety net under the after-commit send and scheduled retries."""
    return sweep_webhooks()
