"""``ingest_message``: the one way a message enters the inbox, from every channel.

Steps, in order, each small: drop duplicates (a unique constraint on channel +
external id), find or create the contact by identity, resolve the ticket
(``resolvers.RESOLVERS``), reopen or start a ticket per policy, append, record
events. The caller commits; events fire after that commit.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from channels.base import InboundAttachment, InboundMessage, SenderIdentity
from helpdesk import attachments, events
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import (
    Attachment,
    Contact,
    DeliveryStatus,
    Direction,
    Message,
    Team,
    Ticket,
    TicketParticipant,
    TicketStatus,
    utcnow,
)
from helpdesk.operations import audit
from helpdesk.operations.contacts import find_or_create_contact, normalize_identity
from helpdesk.operations.tickets import create_ticket, set_status
from helpdesk.sanitize import clean_html

from .resolvers import RESOLVERS, Match, outbound_message_by_rfc_id, resolve_ticket

log = logging.getLogger(__name__)

__all__ = ["IngestResult", "ingest_message"]


@dataclass(frozen=True, slots=True)
class IngestResult:
    message: Message
    ticket: Ticket
    is_duplicate: bool = False
    created_ticket: bool = False
    created_contact: bool = False
    reopened: bool = False
    resolver: str | None = None


def ingest_message(msg: InboundMessage) -> IngestResult:
    """Store ``msg`` exactly once on the right ticket; the caller commits."""
    # No lookup first: the unique constraint on (channel, external_id) finds a
    # duplicate, whether it was stored long ago or by a concurrent ingest, and
    # the savepoint lets us look it up then instead of failing. The same goes
    # for a concurrent ingest of the same new contact.
    for attempt in range(3):
        try:
            with db.session.begin_nested():
                return _ingest(msg)
        except IntegrityError:
            existing = _find_duplicate(msg)
            if existing is not None:
                return IngestResult(message=existing, ticket=existing.ticket, is_duplicate=True)
            if attempt == 2:
                raise
            log.info("ingest of %s/%s raced; retrying", msg.channel, msg.external_id)
    raise AssertionError("unreachable")


def _find_duplicate(msg: InboundMessage) -> Message | None:
    return db.session.execute(
        select(Message).where(
            Message.channel == msg.channel, Message.external_id == msg.external_id
        )
    ).scalar_one_or_none()


def _ingest(msg: InboundMessage) -> IngestResult:
    contact, created_contact = find_or_create_contact(msg.sender, actor=Actor.system(msg.channel))
    actor = Actor.for_contact(contact)

    if msg.is_bounce and msg.bounced_message_id:
        bounced = _apply_bounce(msg)
        if bounced is not None:
            message = _append(bounced.ticket, contact, msg, unread=False)
            return IngestResult(message=message, ticket=bounced.ticket, resolver="bounce")

    match: Match | None = resolve_ticket(msg, contact, RESOLVERS)
    ticket, created_ticket, reopened = _ticket_for(msg, contact, match, actor)
    _add_participants(ticket, contact, msg.participants)
    message = _append(ticket, contact, msg, unread=not msg.is_auto_reply)
    events.on_commit(
        events.MessageReceived(
            actor=actor, ticket_id=ticket.id, message_id=message.id, is_auto_reply=msg.is_auto_reply
        )
    )
    return IngestResult(
        message=message,
        ticket=ticket,
        created_ticket=created_ticket,
        created_contact=created_contact,
        reopened=reopened,
        resolver=match.resolver if match else None,
    )


def _ticket_for(
    msg: InboundMessage, contact: Contact, match: Match | None, actor: Actor
) -> tuple[Ticket, bool, bool]:
    """Continue, reopen or start a ticket; returns (ticket, created, reopened)."""
    if match is not None:
        ticket = match.ticket
        if not ticket.status.is_done:
            if ticket.status is TicketStatus.PENDING and not msg.is_auto_reply:
                set_status(ticket, TicketStatus.OPEN, actor=actor)
            return ticket, False, False
        if msg.is_auto_reply:  # an out-of-office must not wake a finished ticket
            return ticket, False, False
        if _may_reopen(ticket):
            set_status(ticket, TicketStatus.OPEN, actor=actor)
            return ticket, False, True
        follows_up: Ticket | None = ticket
    else:
        follows_up = None
    team = db.session.get(Team, msg.team_id) if msg.team_id else None
    ticket = create_ticket(
        contact,
        actor=actor,
        channel=msg.channel,
        inbox=msg.inbox,
        team=team,
        subject=msg.subject or _subject_from_text(msg.text),
        conversation_id=msg.threading.conversation_id,
        language=msg.language,
        follows_up=follows_up,
    )
    return ticket, True, False


def _may_reopen(ticket: Ticket) -> bool:
    """Solved tickets always reopen; closed ones only within the configured days."""
    if ticket.status is TicketStatus.SOLVED:
        return True
    days = current_app.config["RAPPORT_REOPEN_DAYS"]
    closed_at = ticket.closed_at or ticket.updated_at
    return utcnow() - closed_at <= timedelta(days=days)


def _subject_from_text(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first[:80] + ("…" if len(first) > 80 else "")


def _add_participants(
    ticket: Ticket, contact: Contact, participants: tuple[SenderIdentity, ...]
) -> None:
    if not participants:
        return
    own = {(i.kind, i.value) for i in contact.identities}
    known = {(p.kind, p.value) for p in ticket.participants}
    for person in participants:
        key = (person.kind, normalize_identity(person.kind, person.value))
        if key in own or key in known:
            continue
        ticket.participants.append(
            TicketParticipant(kind=key[0], value=key[1], display_name=person.display_name)
        )
        known.add(key)


def _append(ticket: Ticket, contact: Contact, msg: InboundMessage, *, unread: bool) -> Message:
    now = utcnow()
    message = Message(
        ticket=ticket,
        direction=Direction.INBOUND,
        channel=msg.channel,
        external_id=msg.external_id,
        contact=contact,
        author_kind="contact",
        subject=(msg.subject or None) and msg.subject[:500],
        text=msg.text or "",
        # Channels sanitize already; the funnel cleans again so no path can skip it.
        html=clean_html(msg.html) if msg.html else None,
        reply_text=msg.reply_text,
        status=DeliveryStatus.RECEIVED,
        rfc_message_id=msg.threading.message_id,
        is_auto_reply=msg.is_auto_reply or msg.is_bounce,
        meta=_meta(msg),
        created_at=now,
    )
    db.session.add(message)
    for item in msg.attachments:
        message.attachments.append(_attachment(item))
    # Before the flush, so the ticket's update goes out with the message insert.
    if not msg.is_auto_reply and not msg.is_bounce:
        ticket.last_activity_at = now
        ticket.is_unread = unread or ticket.is_unread
    ticket.updated_at = now
    db.session.flush()
    if message.html and "cid:" in message.html:
        message.html = _rewrite_cids(message.html, message.attachments)
    return message


def _meta(msg: InboundMessage) -> dict[str, object]:
    meta: dict[str, object] = dict(msg.metadata)
    if msg.threading.in_reply_to:
        meta["in_reply_to"] = list(msg.threading.in_reply_to)
    if msg.threading.references:
        meta["references"] = list(msg.threading.references)
    if msg.sent_at:
        meta["sent_at"] = msg.sent_at.isoformat()
    if msg.is_bounce:
        meta["bounce"] = {"message_id": msg.bounced_message_id, "reason": msg.bounce_reason}
    return meta


def _attachment(item: InboundAttachment) -> Attachment:
    name = attachments.safe_filename(item.filename)
    if item.skipped_reason or not item.data:
        return Attachment(
            filename=name,
            content_type=item.content_type,
            size=item.size or 0,
            content_id=item.content_id,
            is_inline=item.is_inline,
            skipped_reason=item.skipped_reason or "empty",
        )
    return Attachment(
        filename=name,
        content_type=item.content_type,
        size=len(item.data),
        sha256=attachments.store_bytes(item.data),
        content_id=item.content_id,
        is_inline=item.is_inline,
    )


def _rewrite_cids(html: str, stored: list[Attachment]) -> str:
    by_cid = {a.content_id.strip("<>"): a for a in stored if a.content_id and a.sha256}

    def replace(match: re.Match[str]) -> str:
        attachment = by_cid.get(match.group(2))
        if attachment is None:
            return match.group(0)
        return f"{match.group(1)}/attachments/{attachment.id}/{attachment.filename}"

    return re.sub(r"""(src=["']?)cid:([^"'\s>]+)""", replace, html)


def _apply_bounce(msg: InboundMessage) -> Message | None:
    """Mark our bounced message failed with the reason; return it, or None if unknown."""
    original = outbound_message_by_rfc_id(msg.bounced_message_id or "")
    if original is None:
        return None
    original.status = DeliveryStatus.FAILED
    original.error = f"bounced: {msg.bounce_reason or 'no reason given'}"
    audit.record(
        "message.bounced",
        actor=Actor.system(msg.channel),
        ticket_id=original.ticket_id,
        message_id=original.id,
        reason=msg.bounce_reason,
    )
    events.on_commit(
        events.MessageDeliveryChanged(
            actor=Actor.system(msg.channel),
            ticket_id=original.ticket_id,
            message_id=original.id,
            status=DeliveryStatus.FAILED.value,
        )
    )
    return original
