"""Which ticket does an inbound message continue? An ordered list of small resolvers.

Each resolver looks at one kind of evidence and returns a ticket or None; the
first answer wins. Order matters: evidence we signed beats evidence anyone can
type (Zammad's follow-up filters, osTicket's subject rule).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

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
from helpdesk.operations.contacts import normalize_identity
from helpdesk.operations.tickets import get_ticket
from helpdesk.tokens import verify_ticket_token

_DONE = (TicketStatus.SOLVED, TicketStatus.CLOSED)

#: Channels where a conversation simply goes on: the contact's last open ticket continues.
CONTINUOUS_CHANNELS = frozenset({"sms", "whatsapp", "telegram", "webchat", "voice"})


@dataclass(frozen=True, slots=True)
class Match:
    ticket: Ticket
    resolver: str


Resolver = Callable[[InboundMessage, Contact], Ticket | None]


def _is_party(ticket: Ticket, contact: Contact, msg: InboundMessage) -> bool:
    """The sender is the ticket's contact or one of its participants."""
    if ticket.contact_id == contact.id:
        return True
    value = normalize_identity(msg.sender.kind, msg.sender.value)
    return (
        db.session.execute(
            select(TicketParticipant.id).where(
                TicketParticipant.ticket_id == ticket.id,
                TicketParticipant.kind == msg.sender.kind,
                TicketParticipant.value == value,
            )
        ).first()
        is not None
    )


def by_explicit_ticket(msg: InboundMessage, contact: Contact) -> Ticket | None:
    """The caller names a ticket (the API); accepted only for that ticket's parties."""
    if msg.threading.ticket_id is None:
        return None
    ticket = get_ticket(msg.threading.ticket_id)
    return ticket if ticket is not None and _is_party(ticket, contact, msg) else None


def by_signed_token(msg: InboundMessage, contact: Contact) -> Ticket | None:
    """A ticket token we signed (our Message-ID, reply address or body marker)."""
    ticket_id = verify_ticket_token(msg.threading.ticket_token)
    return get_ticket(ticket_id) if ticket_id is not None else None


def by_stored_message_id(msg: InboundMessage, contact: Contact) -> Ticket | None:
    """Any Message-ID we stored, named in In-Reply-To or References (newest first)."""
    ids = [*msg.threading.in_reply_to, *reversed(msg.threading.references)]
    ids = [i for i in dict.fromkeys(ids) if i]
    if not ids:
        return None
    # The tickets come with the ids, so get_ticket finds them in the session.
    rows = db.session.execute(
        select(Message.rfc_message_id, Ticket)
        .join(Ticket, Ticket.id == Message.ticket_id)
        .where(Message.rfc_message_id.in_(ids))
    ).all()
    found = {row[0]: row[1].id for row in rows}
    for message_id in ids:
        if message_id in found:
            return get_ticket(found[message_id])
    return None


def by_subject_number(msg: InboundMessage, contact: Contact) -> Ticket | None:
    """``[#1234]`` in the subject, only from the ticket's contact or a participant."""
    number = msg.threading.subject_ticket_number
    if number is None:
        return None
    ticket = get_ticket(number)
    return ticket if ticket is not None and _is_party(ticket, contact, msg) else None


def by_conversation(msg: InboundMessage, contact: Contact) -> Ticket | None:
    """An open chat session, Telegram chat or API conversation on the same channel."""
    conversation = msg.threading.conversation_id
    if not conversation:
        return None
    ticket = db.session.execute(
        select(Ticket)
        .where(
            Ticket.channel == msg.channel,
            Ticket.conversation_id == conversation,
            Ticket.contact_id == contact.id,
            Ticket.merged_into_id.is_(None),
        )
        .order_by(Ticket.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return ticket


def by_last_open_ticket(msg: InboundMessage, contact: Contact) -> Ticket | None:
    """On continuous channels (SMS, chat), the contact's last open ticket there."""
    if msg.channel not in CONTINUOUS_CHANNELS:
        return None
    return db.session.execute(
        select(Ticket)
        .where(
            Ticket.contact_id == contact.id,
            Ticket.channel == msg.channel,
            Ticket.merged_into_id.is_(None),
            Ticket.status.not_in(_DONE),
        )
        .order_by(Ticket.last_activity_at.desc(), Ticket.id.desc())
        .limit(1)
    ).scalar_one_or_none()


RESOLVERS: tuple[Resolver, ...] = (
    by_explicit_ticket,
    by_signed_token,
    by_stored_message_id,
    by_subject_number,
    by_conversation,
    by_last_open_ticket,
)


def resolve_ticket(
    msg: InboundMessage, contact: Contact, resolvers: tuple[Resolver, ...] = RESOLVERS
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
