"""Keep SLA clocks in step with tickets; unlike rules, this follows automation's changes too."""

from __future__ import annotations

from typing import Any

from helpdesk import events
from helpdesk.extensions import db
from helpdesk.jobs import periodic
from helpdesk.models import Direction, Message, Ticket

from . import operations


def _ticket(ticket_id: int) -> Ticket | None:
    if not operations.has_policies() and operations.ticket_clock(ticket_id) is None:
        return None
    return db.session.get(Ticket, ticket_id)


@events.ticket_created.connect
def _start(sender: Any, event: events.TicketCreated, **_: Any) -> None:
    if not operations.has_policies():  # a ticket this new has no clock yet
        return
    ticket = db.session.get(Ticket, event.ticket_id)
    if ticket is not None:
        operations.start_clock(ticket)
    db.session.commit()


@events.ticket_updated.connect
def _updated(sender: Any, event: events.TicketUpdated, **_: Any) -> None:
    changes = event.changes or {}
    if "status" not in changes and "priority" not in changes:
        return
    ticket = _ticket(event.ticket_id)
    if ticket is None:
        db.session.rollback()
        return
    if "priority" in changes:
        operations.reapply_policy(ticket)
    if "status" in changes:
        old, new = changes["status"]
        operations.record_status(ticket, old, new)
    db.session.commit()


@events.message_added.connect
def _replied(sender: Any, event: events.MessageAdded, **_: Any) -> None:
    if event.is_note or event.actor.is_automation:  # an automatic acknowledgement is no answer
        return
    clock = operations.ticket_clock(event.ticket_id)
    if clock is None or clock.first_response_met_at is not None:
        db.session.rollback()
        return
    message = db.session.get(Message, event.message_id)
    ticket = db.session.get(Ticket, event.ticket_id)
    if message is not None and ticket is not None and message.direction is Direction.OUTBOUND:
        operations.record_first_response(ticket, message.created_at)
    db.session.commit()


@periodic(minute="*")
def check_breaches_periodically() -> dict[str, int]:
    """Every minute: mark and announce SLA breaches."""
    return operations.check_breaches()
