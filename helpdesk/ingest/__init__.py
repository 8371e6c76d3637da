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
from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

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
from helpdesk.operations.contacts import (
    ContactRef,
    find_contact_ref,
    insert_contact,
    normalize_identity,
)
from helpdesk.operations.tickets import insert_ticket, set_status
from helpdesk.sanitize import clean_html

from .resolvers import (
    RESOLVERS,
    Match,
    TicketState,
    outbound_message_by_rfc_id,
    resolve_ticket,
)

log = logging.getLogger(__name__)

__all__ = ["IngestResult", "ingest_message"]


# The message and its attachments are written with prebuilt Core statements on
# the session's connection: the ORM unit of work cost several times the inserts
# themselves and was most of the per-message time (bench/core_bench.py). The
# ticket and contact stay ORM objects; the message is loaded only if asked for.
_MESSAGES = Message.__table__
_INSERT_MESSAGE = insert(_MESSAGES).returning(_MESSAGES.c.id)
_INSERT_ATTACHMENT = insert(Attachment.__table__).returning(Attachment.__table__.c.id)
_SET_HTML = update(_MESSAGES).where(_MESSAGES.c.id == bindparam("message_id"))
_TICKETS = Ticket.__table__
_TOUCH_TICKET = (
    update(_TICKETS)
    .where(_TICKETS.c.id == bindparam("ticket_id"))
    .values(updated_at=bindparam("now"))
)
# A message that counts moves the ticket up the inbox and may mark it unread.
_TOUCH_TICKET_ACTIVITY = (
    update(_TICKETS)
    .where(_TICKETS.c.id == bindparam("ticket_id"))
    .values(
        updated_at=bindparam("now"),
        last_activity_at=bindparam("now"),
        is_unread=or_(_TICKETS.c.is_unread, bindparam("unread")),
    )
)


@dataclass(frozen=True, slots=True)
class IngestResult:
    message_id: int
    ticket_id: int
    contact_id: int
    is_duplicate: bool = False
    created_ticket: bool = False
    created_contact: bool = False
    reopened: bool = False
    resolver: str | None = None

    @property
    def message(self) -> Message:
        """The stored message (loaded on first use; most callers need only its id)."""
        message = db.session.get(Message, self.message_id)
        assert message is not None, "an ingested message exists"
        return message

    @property
    def ticket(self) -> Ticket:
        """The ticket it went to (loaded on first use)."""
        ticket = db.session.get(Ticket, self.ticket_id)
        assert ticket is not None, "an ingested message's ticket exists"
        return ticket


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
                return IngestResult(
                    message_id=existing.id,
                    ticket_id=existing.ticket_id,
                    contact_id=existing.contact_id or existing.ticket.contact_id,
                    is_duplicate=True,
                )
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
    # The Core statements below do not autoflush; objects the caller left pending
    # (a contact made a moment ago, say) must be visible to them.
    db.session.flush()
    contact, created_contact = _contact_for(msg)
    actor = Actor("contact", contact.id, contact.name or f"contact #{contact.id}")

    if msg.is_bounce and msg.bounced_message_id:
        bounced = _apply_bounce(msg)
        if bounced is not None:
            message_id = _append(bounced.ticket_id, contact, msg, unread=False)
            return IngestResult(
                message_id=message_id,
                ticket_id=bounced.ticket_id,
                contact_id=contact.id,
                resolver="bounce",
            )

    match: Match | None = resolve_ticket(msg, contact, RESOLVERS)
    ticket_id, created_ticket, reopened = _ticket_for(msg, contact, match, actor)
    _add_participants(ticket_id, contact, msg.participants)
    message_id = _append(ticket_id, contact, msg, unread=not msg.is_auto_reply)
    events.on_commit(
        events.MessageReceived(
            actor=actor, ticket_id=ticket_id, message_id=message_id, is_auto_reply=msg.is_auto_reply
        )
    )
    return IngestResult(
        message_id=message_id,
        ticket_id=ticket_id,
        contact_id=contact.id,
        created_ticket=created_ticket,
        created_contact=created_contact,
        reopened=reopened,
        resolver=match.resolver if match else None,
    )


def _contact_for(msg: InboundMessage) -> tuple[ContactRef, bool]:
    """The sender's contact, created with its identity on first contact."""
    sender = msg.sender
    found = find_contact_ref(sender.kind, sender.value)
    if found is None:
        created = insert_contact(
            actor=Actor.system(msg.channel), name=sender.display_name or "", identities=[sender]
        )
        return created, True
    if not found.name and sender.display_name:
        named = db.session.get(Contact, found.id)
        if named is not None:
            named.name = sender.display_name[:200]
            return ContactRef(found.id, named.name), False
    return found, False


def _ticket_for(
    msg: InboundMessage, contact: ContactRef, match: Match | None, actor: Actor
) -> tuple[int, bool, bool]:
    """Continue, reopen or start a ticket; returns (ticket id, created, reopened)."""
    if match is not None:
        state = match.ticket
        if not state.status.is_done:
            # The common case, a reply to a live ticket, needs no ORM object at all.
            if state.status is TicketStatus.PENDING and not msg.is_auto_reply:
                set_status(_load(state.id), TicketStatus.OPEN, actor=actor)
            return state.id, False, False
        if msg.is_auto_reply:  # an out-of-office must not wake a finished ticket
            return state.id, False, False
        if _may_reopen(state):
            set_status(_load(state.id), TicketStatus.OPEN, actor=actor)
            return state.id, False, True
        follows_up_id: int | None = state.id
    else:
        follows_up_id = None
    team = db.session.get(Team, msg.team_id) if msg.team_id else None
    ticket_id = insert_ticket(
        contact.id,
        actor=actor,
        channel=msg.channel,
        inbox=msg.inbox,
        team=team,
        subject=msg.subject or _subject_from_text(msg.text),
        conversation_id=msg.threading.conversation_id,
        language=msg.language,
        follows_up_id=follows_up_id,
    )
    return ticket_id, True, False


def _load(ticket_id: int) -> Ticket:
    ticket = db.session.get(Ticket, ticket_id)
    assert ticket is not None, "a resolved ticket exists in this transaction"
    return ticket


def _may_reopen(ticket: TicketState) -> bool:
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
    ticket_id: int, contact: ContactRef, participants: tuple[SenderIdentity, ...]
) -> None:
    if not participants:
        return
    ticket = _load(ticket_id)
    owner = db.session.get(Contact, contact.id)
    own = {(i.kind, i.value) for i in owner.identities} if owner is not None else set()
    known = {(p.kind, p.value) for p in ticket.participants}
    for person in participants:
        key = (person.kind, normalize_identity(person.kind, person.value))
        if key in own or key in known:
            continue
        ticket.participants.append(
            TicketParticipant(kind=key[0], value=key[1], display_name=person.display_name)
        )
        known.add(key)


def _append(ticket_id: int, contact: ContactRef, msg: InboundMessage, *, unread: bool) -> int:
    """Insert the message and its attachments, bump the ticket; returns the message id."""
    # Pending ORM changes (a new ticket, a reopened status) go out first, in
    # the order the unit of work chooses, before the rows that point at them.
    db.session.flush()
    now = utcnow()
    # Channels sanitize already; the funnel cleans again so no path can skip it.
    html = clean_html(msg.html) if msg.html else None
    connection = db.session.connection()
    message_id: int = connection.execute(
        _INSERT_MESSAGE,
        {
            "ticket_id": ticket_id,
            "direction": Direction.INBOUND,
            "channel": msg.channel,
            "external_id": msg.external_id,
            "contact_id": contact.id,
            "author_kind": "contact",
            "subject": (msg.subject or None) and msg.subject[:500],
            "text": msg.text or "",
            "html": html,
            "reply_text": msg.reply_text,
            "status": DeliveryStatus.RECEIVED,
            "rfc_message_id": msg.threading.message_id,
            "is_auto_reply": msg.is_auto_reply or msg.is_bounce,
            "meta": _meta(msg),
            "created_at": now,
        },
    ).scalar_one()
    stored = [_store_attachment(connection, message_id, item) for item in msg.attachments]
    if html and "cid:" in html and stored:
        connection.execute(
            _SET_HTML, {"message_id": message_id, "html": _rewrite_cids(html, stored)}
        )

    # Auto-replies and bounces are kept but do not move the ticket up the inbox.
    counts = not msg.is_auto_reply and not msg.is_bounce
    params = {"ticket_id": ticket_id, "now": now, "unread": unread}
    connection.execute(_TOUCH_TICKET_ACTIVITY if counts else _TOUCH_TICKET, params)
    # A ticket object already in the session must agree with its row without
    # looking dirty (a later flush would write the old values back).
    ticket = db.session.identity_map.get(identity_key(Ticket, ticket_id))
    if ticket is not None:
        set_committed_value(ticket, "updated_at", now)
        if counts:
            set_committed_value(ticket, "last_activity_at", now)
            set_committed_value(ticket, "is_unread", unread or ticket.is_unread)
    return message_id


@dataclass(frozen=True, slots=True)
class _Stored:
    id: int
    filename: str
    content_id: str | None
    has_content: bool


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


def _store_attachment(connection: Connection, message_id: int, item: InboundAttachment) -> _Stored:
    name = attachments.safe_filename(item.filename)
    row: dict[str, object] = {
        "message_id": message_id,
        "filename": name,
        "content_type": item.content_type,
        "content_id": item.content_id,
        "is_inline": item.is_inline,
    }
    if item.skipped_reason or not item.data:
        row.update(size=item.size or 0, sha256=None, skipped_reason=item.skipped_reason or "empty")
    else:
        row.update(size=len(item.data), sha256=attachments.store_bytes(item.data))
        row.setdefault("skipped_reason", None)
    attachment_id: int = connection.execute(_INSERT_ATTACHMENT, row).scalar_one()
    return _Stored(attachment_id, name, item.content_id, row["sha256"] is not None)


def _rewrite_cids(html: str, stored: list[_Stored]) -> str:
    by_cid = {a.content_id.strip("<>"): a for a in stored if a.content_id and a.has_content}

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
