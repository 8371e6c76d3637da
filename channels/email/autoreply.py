"""Auto-acknowledgement: tell a customer their new email ticket arrived, sparingly.

Sent only for a ticket opened by a person's mail on a mailbox that asks for it;
never to auto-replies, bounces or list mail (the parser marks all of those
``is_auto_reply``), never to our own addresses, and at most
``RAPPORT_EMAIL_AUTOACK_PER_HOUR`` per sender per hour, counted in the database
so every worker sees the same count. The reply is marked automatic, so it leaves
with ``Auto-Submitted: auto-replied`` and other robots do not answer it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app, render_template
from sqlalchemy import func, select

from channels.email.mailboxes import own_addresses
from channels.email.models import AutoAcknowledgement, Mailbox
from helpdesk import events
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.jobs import job
from helpdesk.models import Direction, Message, Ticket, utcnow
from helpdesk.operations.messages import reply_to_ticket
from helpdesk.readcache import ReadCache

log = logging.getLogger(__name__)

ACTOR = Actor.automation(label="auto-acknowledge")


@events.ticket_created.connect
def _acknowledge_new_email_ticket(
    sender: events.Event, event: events.TicketCreated, **_: object
) -> None:
    if event.actor.is_automation:
        return
    if event.channel != "email" or not (event.inbox or "").startswith("email:"):
        return
    # Most mailboxes never acknowledge; knowing which do spares a queued job per new
    # ticket. The job checks again under a lock: this is only a shortcut.
    mailbox_id = (event.inbox or "").split(":", 1)[1]
    if not mailbox_id.isdigit() or int(mailbox_id) not in _acknowledging.get():
        return
    db.session.rollback()  # on SQLite even a read holds the write lock the job needs
    send_auto_acknowledgement(event.ticket_id)


def _acknowledging_mailboxes() -> frozenset[int]:
    return frozenset(
        db.session.scalars(
            select(Mailbox.id).where(
                Mailbox.auto_acknowledge.is_(True), Mailbox.is_active.is_(True)
            )
        )
    )


_acknowledging = ReadCache(
    "email.acknowledging_mailboxes", _acknowledging_mailboxes, ttl=5.0, models=(Mailbox,)
)


def per_hour_limit() -> int:
    return int(current_app.config.get("RAPPORT_EMAIL_AUTOACK_PER_HOUR", 3))


@job()
def send_auto_acknowledgement(ticket_id: int) -> str:
    """Queue the acknowledgement for a new email ticket; returns what it decided."""
    decision = acknowledge_ticket(ticket_id)
    if decision != "sent":
        db.session.rollback()
    return decision


def acknowledge_ticket(ticket_id: int) -> str:
    """Reply once with the acknowledgement when the rules allow it; commits when it does."""
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None or not (ticket.inbox or "").startswith("email:"):
        return "not-email"
    try:
        mailbox_id = int((ticket.inbox or "").split(":", 1)[1])
    except ValueError:
        return "not-email"
    # Lock the mailbox row so two workers cannot both pass the rate limit.
    mailbox = db.session.execute(
        select(Mailbox).where(Mailbox.id == mailbox_id).with_for_update()
    ).scalar_one_or_none()
    if mailbox is None or not mailbox.is_active or not mailbox.auto_acknowledge:
        return "off"
    first = db.session.scalars(
        select(Message)
        .where(Message.ticket_id == ticket.id, Message.direction == Direction.INBOUND)
        .order_by(Message.id)
        .limit(1)
    ).first()
    if first is None:
        return "no-message"
    if first.is_auto_reply:
        return "auto-reply"
    key = f"auto-ack:{ticket.id}"
    if db.session.scalar(select(Message.id).where(Message.idempotency_key == key)) is not None:
        return "already-sent"
    address = (ticket.contact.email or "").lower() if ticket.contact else ""
    if not address or address in own_addresses():
        return "no-address"
    since = utcnow() - timedelta(hours=1)
    recent = db.session.scalar(
        select(func.count())
        .select_from(AutoAcknowledgement)
        .where(AutoAcknowledgement.address == address, AutoAcknowledgement.sent_at > since)
    )
    if (recent or 0) >= per_hour_limit():
        log.info("auto-acknowledgement to %s skipped: %s in the last hour", address, recent)
        return "rate-limited"

    body = render_template(
        "email/auto_acknowledge.md",
        name=ticket.contact.first_name or ticket.contact.display_name,
        number=ticket.number,
        signature=mailbox.from_name or mailbox.name,
        ticket=ticket,
    )
    # An acknowledgement is not an answer: the ticket stays unread, new and
    # without a first response, as if nothing had been sent.
    before = (ticket.is_unread, ticket.first_response_at, ticket.last_activity_at)
    reply_to_ticket(
        ticket,
        actor=ACTOR,
        body=body,
        idempotency_key=key,
        status_after=ticket.status,
    )
    ticket.is_unread, ticket.first_response_at, ticket.last_activity_at = before
    db.session.add(
        AutoAcknowledgement(
            mailbox_id=mailbox.id, address=address, ticket_id=ticket.id, sent_at=utcnow()
        )
    )
    db.session.commit()
    return "sent"
