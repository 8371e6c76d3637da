"""Replies and internal notes: the one funnel out."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from helpdesk import attachments, events
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import (
    Attachment,
    DeliveryStatus,
    Direction,
    Message,
    Notification,
    Ticket,
    TicketStatus,
    User,
    utcnow,
)
from helpdesk.sanitize import markdown_to_html

from . import audit
from .contacts import OperationError
from .tickets import set_status

_MENTION = re.compile(r"(?<![\w@])@([\w][\w.\-]*)", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Upload:
    """A file an agent attached to a reply or note."""

    filename: str
    content_type: str
    data: bytes


def _existing(key: str | None) -> Message | None:
    if not key:
        return None
    return db.session.execute(
        select(Message).where(Message.idempotency_key == key)
    ).scalar_one_or_none()


def reply_to_ticket(
    ticket: Ticket,
    *,
    actor: Actor,
    body: str,
    author: User | None = None,
    uploads: list[Upload] | tuple[Upload, ...] = (),
    idempotency_key: str | None = None,
    status_after: TicketStatus | None = None,
) -> Message:
    """Queue a reply to the customer on the ticket's channel; a repeated key returns the first."""
    return _add_message(
        ticket,
        actor=actor,
        body=body,
        author=author,
        uploads=uploads,
        idempotency_key=idempotency_key,
        direction=Direction.OUTBOUND,
        status_after=status_after,
    )


def add_note(
    ticket: Ticket,
    *,
    actor: Actor,
    body: str,
    author: User | None = None,
    uploads: list[Upload] | tuple[Upload, ...] = (),
    idempotency_key: str | None = None,
) -> Message:
    """Add an internal note; @mentions notify the agents named."""
    return _add_message(
        ticket,
        actor=actor,
        body=body,
        author=author,
        uploads=uploads,
        idempotency_key=idempotency_key,
        direction=Direction.NOTE,
    )


def _add_message(
    ticket: Ticket,
    *,
    actor: Actor,
    body: str,
    author: User | None,
    uploads: list[Upload] | tuple[Upload, ...],
    idempotency_key: str | None,
    direction: Direction,
    status_after: TicketStatus | None = None,
) -> Message:
    body = (body or "").strip()
    if not body and not uploads:
        raise OperationError("the message is empty")
    if ticket.merged_into_id is not None:
        raise OperationError(f"ticket #{ticket.id} was merged into #{ticket.merged_into_id}")
    replay = _existing(idempotency_key)
    if replay is not None:
        return replay
    now = utcnow()
    is_reply = direction is Direction.OUTBOUND
    try:
        with db.session.begin_nested():
            message = Message(
                ticket=ticket,
                direction=direction,
                channel=ticket.channel,
                contact_id=ticket.contact_id if is_reply else None,
                author=author,
                author_kind=actor.kind,
                subject=ticket.subject if is_reply else None,
                text=body,
                html=markdown_to_html(body) if body else None,
                status=DeliveryStatus.QUEUED if is_reply else DeliveryStatus.RECEIVED,
                idempotency_key=idempotency_key,
                is_by_automation=actor.is_automation,
                created_at=now,
            )
            db.session.add(message)
            for upload in uploads:
                message.attachments.append(
                    Attachment(
                        filename=attachments.safe_filename(upload.filename),
                        content_type=upload.content_type or "application/octet-stream",
                        size=len(upload.data),
                        sha256=attachments.store_bytes(upload.data),
                    )
                )
            db.session.flush()
    except IntegrityError:
        # The same submit arrived twice at once; the other one won.
        replay = _existing(idempotency_key)
        if replay is None:
            raise
        return replay

    if is_reply:
        if ticket.first_response_at is None and actor.kind in ("user", "automation"):
            ticket.first_response_at = now
        ticket.last_activity_at = now
        ticket.is_unread = False
        if status_after is not None:
            set_status(ticket, status_after, actor=actor)
        elif ticket.status is TicketStatus.NEW:
            set_status(ticket, TicketStatus.OPEN, actor=actor)
    ticket.updated_at = now
    db.session.flush()
    audit.record(
        "message.replied" if is_reply else "message.noted",
        actor=actor,
        ticket_id=ticket.id,
        contact_id=ticket.contact_id if is_reply else None,
        message_id=message.id,
    )
    events.on_commit(
        events.MessageAdded(
            actor=actor, ticket_id=ticket.id, message_id=message.id, is_note=not is_reply
        )
    )
    if direction is Direction.NOTE:
        _notify_mentions(ticket, message, actor)
    return message


def mentioned_users(text: str) -> list[User]:
    """Return the active users named by ``@handle`` (email local part or first name)."""
    handles = {h.lower().rstrip(".") for h in _MENTION.findall(text)}
    if not handles:
        return []
    # Agents are few; matching in Python keeps the rule identical on every database.
    return [
        user
        for user in db.session.scalars(select(User).where(User.is_active_user.is_(True)))
        if user.email.split("@")[0].lower() in handles or user.first_name.lower() in handles
    ]


def _notify_mentions(ticket: Ticket, message: Message, actor: Actor) -> None:
    for user in mentioned_users(message.text):
        if actor.is_user and actor.id == user.id:
            continue
        db.session.add(
            Notification(
                user_id=user.id, kind="mention", ticket_id=ticket.id, message_id=message.id
            )
        )
        events.on_commit(
            events.UserMentioned(
                actor=actor, user_id=user.id, ticket_id=ticket.id, message_id=message.id
            )
        )
