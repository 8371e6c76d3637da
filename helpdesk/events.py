"""Typed domain events, fired only after the transaction that caused them commits.

Operations call :func:`on_commit` with a frozen event. When the session commits,
each event is sent on its blinker signal; on rollback the events are dropped.
Listeners (``helpdesk/realtime.py``, ``automation/``, notifications) connect to
the signals below; this module is the catalogue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from blinker import Namespace
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, SessionTransaction

from helpdesk.actors import Actor

log = logging.getLogger(__name__)
_signals = Namespace()
_PENDING = "rapport.pending_events"
_MARKS = "rapport.savepoint_marks"


@dataclass(frozen=True, slots=True)
class Event:
    name: ClassVar[str] = "event"
    actor: Actor


@dataclass(frozen=True, slots=True)
class TicketCreated(Event):
    name: ClassVar[str] = "ticket.created"
    ticket_id: int
    # Carried so listeners that care about one channel need not read the ticket.
    channel: str = ""
    inbox: str | None = None


@dataclass(frozen=True, slots=True)
class MessageReceived(Event):
    """A customer's message was appended (inbound)."""

    name: ClassVar[str] = "message.received"
    ticket_id: int
    message_id: int
    is_auto_reply: bool = False


@dataclass(frozen=True, slots=True)
class MessageAdded(Event):
    """An agent's or rule's reply or note was stored (queued for delivery if a reply)."""

    name: ClassVar[str] = "message.added"
    ticket_id: int
    message_id: int
    is_note: bool = False


@dataclass(frozen=True, slots=True)
class MessageDeliveryChanged(Event):
    name: ClassVar[str] = "message.delivery_changed"
    ticket_id: int
    message_id: int
    status: str


@dataclass(frozen=True, slots=True)
class TicketUpdated(Event):
    """Fields changed: ``changes`` maps field name to (old, new) as plain values."""

    name: ClassVar[str] = "ticket.updated"
    ticket_id: int
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TicketSolved(Event):
    name: ClassVar[str] = "ticket.solved"
    ticket_id: int


@dataclass(frozen=True, slots=True)
class TicketClosed(Event):
    name: ClassVar[str] = "ticket.closed"
    ticket_id: int


@dataclass(frozen=True, slots=True)
class TicketReopened(Event):
    name: ClassVar[str] = "ticket.reopened"
    ticket_id: int


@dataclass(frozen=True, slots=True)
class TicketAssigned(Event):
    name: ClassVar[str] = "ticket.assigned"
    ticket_id: int
    assignee_id: int | None
    team_id: int | None


@dataclass(frozen=True, slots=True)
class TicketsMerged(Event):
    name: ClassVar[str] = "ticket.merged"
    ticket_id: int  # the one kept
    merged_id: int  # the one folded in


@dataclass(frozen=True, slots=True)
class ContactCreated(Event):
    name: ClassVar[str] = "contact.created"
    contact_id: int


@dataclass(frozen=True, slots=True)
class ContactsMerged(Event):
    name: ClassVar[str] = "contact.merged"
    contact_id: int
    merged_id: int


@dataclass(frozen=True, slots=True)
class OrderRecorded(Event):
    """An order was created or changed status (``previous_status`` None when new)."""

    name: ClassVar[str] = "order.recorded"
    order_id: int
    contact_id: int
    status: str
    previous_status: str | None = None


@dataclass(frozen=True, slots=True)
class UserMentioned(Event):
    name: ClassVar[str] = "user.mentioned"
    user_id: int
    ticket_id: int
    message_id: int


CATALOGUE: tuple[type[Event], ...] = (
    TicketCreated,
    MessageReceived,
    MessageAdded,
    MessageDeliveryChanged,
    TicketUpdated,
    TicketSolved,
    TicketClosed,
    TicketReopened,
    TicketAssigned,
    TicketsMerged,
    ContactCreated,
    ContactsMerged,
    OrderRecorded,
    UserMentioned,
)

ticket_created = _signals.signal(TicketCreated.name)
message_received = _signals.signal(MessageReceived.name)
message_added = _signals.signal(MessageAdded.name)
message_delivery_changed = _signals.signal(MessageDeliveryChanged.name)
ticket_updated = _signals.signal(TicketUpdated.name)
ticket_solved = _signals.signal(TicketSolved.name)
ticket_closed = _signals.signal(TicketClosed.name)
ticket_reopened = _signals.signal(TicketReopened.name)
ticket_assigned = _signals.signal(TicketAssigned.name)
tickets_merged = _signals.signal(TicketsMerged.name)
contact_created = _signals.signal(ContactCreated.name)
contacts_merged = _signals.signal(ContactsMerged.name)
order_recorded = _signals.signal(OrderRecorded.name)
user_mentioned = _signals.signal(UserMentioned.name)


def signal_for(event: Event) -> Any:
    """Return the blinker signal an event is sent on."""
    return _signals.signal(event.name)


def on_commit(event: Event, session: Session | None = None) -> None:
    """Send ``event`` once the current transaction commits; drop it on rollback."""
    if session is None:
        from helpdesk.extensions import db

        session = db.session()
    session.info.setdefault(_PENDING, []).append(event)


def dispatch(event: Event) -> None:
    """Send an event now; each listener runs in its own app context and session.

    A listener must not reopen the session that just committed (on SQLite a
    transaction holds the write lock), nor leave one open for the next
    listener, so each gets a fresh session that is closed after it, and a
    failing listener cannot undo the committed change or stop the others.
    """
    from flask import current_app, has_app_context

    from helpdesk.extensions import db

    app = current_app._get_current_object() if has_app_context() else None  # type: ignore[attr-defined]
    for receiver in signal_for(event).receivers_for(event):
        try:
            if app is None:
                receiver(event, event=event)
                continue
            with app.app_context():
                try:
                    receiver(event, event=event)
                finally:
                    db.session.remove()
        except Exception:
            log.exception("listener %r failed for %s", receiver, event.name)


@sa_event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        session.info.setdefault(_MARKS, {})[id(transaction)] = len(session.info.get(_PENDING, []))


@sa_event.listens_for(Session, "after_commit")
def _fire_after_commit(session: Session) -> None:
    # Releasing a savepoint also "commits"; only the outermost commit makes events real.
    if session.in_nested_transaction():
        return
    pending: list[Event] = session.info.pop(_PENDING, [])
    session.info.pop(_MARKS, None)
    for ev in pending:
        dispatch(ev)


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.nested:
        # Only what happened inside the rolled-back savepoint is undone.
        mark = session.info.get(_MARKS, {}).pop(id(previous_transaction), None)
        if mark is not None and _PENDING in session.info:
            del session.info[_PENDING][mark:]
        return
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_MARKS, None)
