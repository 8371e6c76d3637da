"""The delivery job: hand queued replies to their channel, exactly once, with retries.

A reply is committed as ``queued``; after commit this module enqueues
``deliver_message``. The job claims the message with a conditional update
(queued -> sending), so two workers never send it twice. A periodic sweep
re-enqueues queued messages whose job was lost (a crash between commit and
enqueue) and settles messages left in ``sending`` by a crash mid-send.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import or_, select, update

from channels.base import PermanentDeliveryError, get_channel
from helpdesk import events
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.jobs import job, periodic
from helpdesk.models import DeliveryStatus, Direction, Message, utcnow
from helpdesk.rows import changed_rows

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
#: Seconds before attempt n+1: 30 s, 2 min, 8 min, 32 min, ~2 h.
BACKOFF_BASE = 30
STALE_SENDING = timedelta(minutes=10)
LOST_QUEUED = timedelta(minutes=2)


def backoff_seconds(attempt: int) -> int:
    return int(BACKOFF_BASE * 4 ** max(attempt - 1, 0))


@events.message_added.connect
def _enqueue_reply(sender: events.Event, event: events.MessageAdded, **_: object) -> None:
    if not event.is_note:
        deliver_message(event.message_id)


@job()
def deliver_message(message_id: int) -> str:
    """Send one queued message through its channel; returns the final status."""
    claimed = changed_rows(
        update(Message)
        .where(Message.id == message_id, Message.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.SENDING, attempts=Message.attempts + 1)
    )
    db.session.commit()
    if not claimed:
        return "skipped"
    message = _reload(message_id)
    try:
        channel = get_channel(message.channel)
    except KeyError:
        return _finish(message, DeliveryStatus.FAILED, f"no channel named '{message.channel}'")
    key = message.idempotency_key or f"message-{message.id}"
    try:
        payload = channel.render(message, idempotency_key=key)
        # End the transaction before the network call: no lock held while we wait.
        db.session.commit()
        result = channel.transmit(payload)
    except PermanentDeliveryError as exc:
        message = _reload(message_id)
        return _finish(message, DeliveryStatus.FAILED, str(exc) or exc.__class__.__name__)
    except Exception as exc:  # provider down, network: retry with backoff
        message = _reload(message_id)
        log.warning(
            "delivery of message %s failed (attempt %s): %s", message.id, message.attempts, exc
        )
        if message.attempts >= MAX_ATTEMPTS:
            return _finish(
                message, DeliveryStatus.FAILED, f"gave up after {message.attempts} attempts: {exc}"
            )
        delay = backoff_seconds(message.attempts)
        message.status = DeliveryStatus.QUEUED
        message.error = f"attempt {message.attempts} failed: {exc}; retrying in {delay}s"
        message.next_attempt_at = utcnow() + timedelta(seconds=delay)
        db.session.commit()
        deliver_message.schedule((message.id,), delay=delay)
        return "retrying"
    message = _reload(message_id)
    if result.external_id and not message.external_id:
        message.external_id = result.external_id
    return _finish(message, DeliveryStatus.SENT, None)


def _reload(message_id: int) -> Message:
    """Load the claimed message again; it can only be missing if deleted mid-delivery."""
    message = db.session.get(Message, message_id)
    if message is None:
        raise LookupError(f"message {message_id} was deleted while being delivered")
    return message


def _finish(message: Message, status: DeliveryStatus, error: str | None) -> str:
    message.status = status
    message.error = error
    message.next_attempt_at = None
    if status is DeliveryStatus.SENT:
        message.sent_at = utcnow()
    events.on_commit(
        events.MessageDeliveryChanged(
            actor=Actor.system("delivery"),
            ticket_id=message.ticket_id,
            message_id=message.id,
            status=status.value,
        )
    )
    db.session.commit()
    return status.value


def sweep_deliveries() -> dict[str, int]:
    """Re-enqueue lost queued messages and settle ones interrupted mid-send."""
    now = utcnow()
    lost = db.session.scalars(
        select(Message.id).where(
            Message.direction == Direction.OUTBOUND,
            Message.status == DeliveryStatus.QUEUED,
            or_(
                Message.next_attempt_at <= now - LOST_QUEUED,
                (Message.next_attempt_at.is_(None)) & (Message.created_at <= now - LOST_QUEUED),
            ),
        )
    ).all()
    interrupted = db.session.scalars(
        select(Message).where(
            Message.status == DeliveryStatus.SENDING,
            Message.created_at <= now - STALE_SENDING,
            or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now - STALE_SENDING),
        )
    ).all()
    retried = flagged = 0
    requeue = list(lost)
    for message in interrupted:
        try:
            safe = get_channel(message.channel).supports_idempotent_retry
        except KeyError:
            safe = False
        if safe:
            message.status = DeliveryStatus.QUEUED
            requeue.append(message.id)
            retried += 1
        else:
            # We cannot know whether the provider got it; a person decides, we never double-send.
            message.status = DeliveryStatus.FAILED
            message.error = (
                "delivery was interrupted and may or may not have been sent; check and resend"
            )
            flagged += 1
    db.session.commit()
    for message_id in requeue:
        deliver_message(message_id)
    return {"requeued": len(lost) + retried, "flagged": flagged}


@periodic(minute="*")
def sweep_deliveries_periodically() -> dict[str, int]:
    """Every minute: the safety net under the after-commit enqueue."""
    return sweep_deliveries()
