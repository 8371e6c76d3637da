"""Which ticket does an inbound message continue? An ordered list of small resolvers.

Each resolver looks at one kind of evidence and returns a ticket's state or None; the
first answer wins. Order matters: evidence we signed beats evidence anyone can
type (Zammad's follow-up filters, osTicket's subject rule).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, select

from channels.base import InboundMessage
from helpdesk.extensions import db
from helpdesk.models import (
    Contact,
    Direction,
    Message,
    Ticket,
    TicketParticipant,
    TicketStatus,
)
from helpdesk.operations.contacts import ContactRef, normalize_identity
from helpdesk.tokens import verify_ticket_token

_DONE = (TicketStatus.SOLVED, TicketStatus.CLOSED)

#: Channels where a conversation simply goes on: the contact's last open ticket continues.
CONTINUOUS_CHANNELS = frozenset({"sms", "whatsapp", "telegram", "webchat", "voice"})


@dataclass(frozen=True, slots=True)
class TicketState:
    """The few columns the funnel decides with, read without loading the ORM object."""

    id: int
    status: TicketStatus
    contact_id: int
    merged_into_id: int | None
    closed_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Match:
    ticket: TicketState
    resolver: str


#: The funnel passes a ``ContactRef``; tests and tools may pass a ``Contact``.
Party = Contact | ContactRef
Resolver = Callable[[InboundMessage, Party], TicketState | None]

# Built once: constructing a statement costs more than running it, and the
# resolvers run for every inbound message.
_STATE = (
    Ticket.id,
    Ticket.status,
    Ticket.contact_id,
    Ticket.merged_into_id,
    Ticket.closed_at,
    Ticket.updated_at,
)
_STATE_BY_ID = select(*_STATE).where(Ticket.id == bindparam("ticket_id"))
_PARTICIPANT = select(TicketParticipant.id).where(
    TicketParticipant.ticket_id == bindparam("ticket_id"),
    TicketParticipant.kind == bindparam("kind"),
    TicketParticipant.value == bindparam("value"),
)
_STATE_BY_MESSAGE_ID = (
    select(Message.rfc_message_id, *_STATE)
    .join(Ticket, Ticket.id == Message.ticket_id)
    .where(Message.rfc_message_id == bindparam("id"))
)
# An expanding IN is rendered afresh on every run; most replies name one id.
_STATES_BY_MESSAGE_ID = (
    select(Message.rfc_message_id, *_STATE)
    .join(Ticket, Ticket.id == Message.ticket_id)
    .where(Message.rfc_message_id.in_(bindparam("ids", expanding=True)))
)
_BY_CONVERSATION = (
    select(*_STATE)
    .where(
        Ticket.channel == bindparam("channel"),
        Ticket.conversation_id == bindparam("conversation"),
        Ticket.contact_id == bindparam("contact_id"),
        Ticket.merged_into_id.is_(None),
    )
    .order_by(Ticket.id.desc())
    .limit(1)
)
_LAST_OPEN = (
    select(*_STATE)
    .where(
        Ticket.contact_id == bindparam("contact_id"),
        Ticket.channel == bindparam("channel"),
        Ticket.merged_into_id.is_(None),
        Ticket.status.not_in(_DONE),
    )
    .order_by(Ticket.last_activity_at.desc(), Ticket.id.desc())
    .limit(1)
)


def _state(row: Row[*tuple[Any, ...]] | None) -> TicketState | None:
    """A row of ``_STATE`` columns as a state, following merges to the ticket kept."""
    if row is None:
        return None
    state = TicketState(
        row.id, row.status, row.contact_id, row.merged_into_id, row.closed_at, row.updated_at
    )
    return ticket_state(state.merged_into_id) if state.merged_into_id else state


def ticket_state(ticket_id: int) -> TicketState | None:
    """The ticket's state, following merges to the one that was kept."""
    seen: set[int] = set()
    state: TicketState | None = None
    while ticket_id not in seen:
        seen.add(ticket_id)
        row = db.session.connection().execute(_STATE_BY_ID, {"ticket_id": ticket_id}).first()
        if row is None:
            return state
        state = TicketState(
            row.id, row.status, row.contact_id, row.merged_into_id, row.closed_at, row.updated_at
        )
        if state.merged_into_id is None:
            return state
        ticket_id = state.merged_into_id
    return state


def _is_party(ticket: TicketState, contact: Party, msg: InboundMessage) -> bool:
    """The sender is the ticket's contact or one of its participants."""
    if ticket.contact_id == contact.id:
        return True
    value = normalize_identity(msg.sender.kind, msg.sender.value)
    params = {"ticket_id": ticket.id, "kind": msg.sender.kind, "value": value}
    return db.session.connection().execute(_PARTICIPANT, params).first() is not None


def by_explicit_ticket(msg: InboundMessage, contact: Party) -> TicketState | None:
    """The caller names a ticket (the API); accepted only for that ticket's parties."""
    if msg.threading.ticket_id is None:
        return None
    ticket = ticket_state(msg.threading.ticket_id)
    return ticket if ticket is not None and _is_party(ticket, contact, msg) else None


def by_signed_token(msg: InboundMessage, contact: Party) -> TicketState | None:
    """A ticket token we signed (our Message-ID, reply address or body marker)."""
    ticket_id = verify_ticket_token(msg.threading.ticket_token)
    return ticket_state(ticket_id) if ticket_id is not None else None


def by_stored_message_id(msg: InboundMessage, contact: Party) -> TicketState | None:
    """Any Message-ID we stored, named in In-Reply-To or References (newest first)."""
    ids = [*msg.threading.in_reply_to, *reversed(msg.threading.references)]
    ids = [i for i in dict.fromkeys(ids) if i]
    if not ids:
        return None
    connection = db.session.connection()
    if len(ids) == 1:
        rows = connection.execute(_STATE_BY_MESSAGE_ID, {"id": ids[0]}).all()
    else:
        rows = connection.execute(_STATES_BY_MESSAGE_ID, {"ids": ids}).all()
    found = {row.rfc_message_id: row for row in rows}
    for message_id in ids:
        if message_id in found:
            return _state(found[message_id])
    return None


def by_subject_number(msg: InboundMessage, contact: Party) -> TicketState | None:
    """``[#1234]`` in the subject, only from the ticket's contact or a participant."""
    number = msg.threading.subject_ticket_number
    if number is None:
        return None
    ticket = ticket_state(number)
    return ticket if ticket is not None and _is_party(ticket, contact, msg) else None


def by_conversation(msg: InboundMessage, contact: Party) -> TicketState | None:
    """An open chat session, Telegram chat or API conversation on the same channel."""
    conversation = msg.threading.conversation_id
    if not conversation:
        return None
    params = {"channel": msg.channel, "conversation": conversation, "contact_id": contact.id}
    return _state(db.session.connection().execute(_BY_CONVERSATION, params).first())


def by_last_open_ticket(msg: InboundMessage, contact: Party) -> TicketState | None:
    """On continuous channels (SMS, chat), the contact's last open ticket there."""
    if msg.channel not in CONTINUOUS_CHANNELS:
        return None
    params = {"contact_id": contact.id, "channel": msg.channel}
    return _state(db.session.connection().execute(_LAST_OPEN, params).first())


RESOLVERS: tuple[Resolver, ...] = (
    by_explicit_ticket,
    by_signed_token,
    by_stored_message_id,
    by_subject_number,
    by_conversation,
    by_last_open_ticket,
)


def resolve_ticket(
    msg: InboundMessage, contact: Party, resolvers: tuple[Resolver, ...] = RESOLVERS
) -> Match | None:
    """Return the first resolver's ticket, or None for a new conversation."""
    for resolver in resolvers:
        ticket = resolver(msg, contact)
        if ticket is not None:
            return Match(ticket=ticket, resolver=resolver.__name__)
    return None


def outbound_message_by_rfc_id(rfc_message_id: str) -> Message | None:
    """Find one of our sent messages by its Message-ID (bounces point at it)."""
    return db.session.execute(
        select(Message).where(
            Message.rfc_message_id == rfc_message_id, Message.direction == Direction.OUTBOUND
        )
    ).scalar_one_or_none()
