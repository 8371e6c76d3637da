"""Messages on a ticket (inbound, outbound, internal notes) and their attachments."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from helpdesk.extensions import db

from ._types import JSONType, UTCDateTime, enum_type, utcnow

if TYPE_CHECKING:  # pragma: no cover
    from .contacts import Contact
    from .tickets import Ticket
    from .users import User


class Direction(enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    NOTE = "note"


class DeliveryStatus(enum.Enum):
    RECEIVED = "received"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class Message(db.Model):  # type: ignore[name-defined]
    __tablename__ = "messages"
    __table_args__ = (
        # Dedupe of inbound messages is this constraint, not a lookup.
        UniqueConstraint("channel", "external_id"),
        Index("ix_messages_ticket_created", "ticket_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    direction: Mapped[Direction] = mapped_column(enum_type(Direction, 16))
    channel: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str | None] = mapped_column(String(500))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: "user", "contact", "automation", "system" or "api": who or what wrote it.
    author_kind: Mapped[str] = mapped_column(String(16), default="contact")
    subject: Mapped[str | None] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text)
    reply_text: Mapped[str | None] = mapped_column(Text)
    status: Mapped[DeliveryStatus] = mapped_column(
        enum_type(DeliveryStatus, 16), default=DeliveryStatus.RECEIVED
    )
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Replays of the same submit (double click, retried request) find this key and stop.
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    #: RFC 5322 Message-ID (without brackets) of mail we received or sent.
    rfc_message_id: Mapped[str | None] = mapped_column(String(500), index=True)
    is_auto_reply: Mapped[bool] = mapped_column(default=False)
    is_by_automation: Mapped[bool] = mapped_column(default=False)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    ticket: Mapped[Ticket] = relationship()
    contact: Mapped[Contact | None] = relationship()
    author: Mapped[User | None] = relationship()
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", order_by="Attachment.id", cascade="all, delete-orphan"
    )

    @property
    def is_note(self) -> bool:
        return self.direction is Direction.NOTE

    @property
    def display_text(self) -> str:
        return self.reply_text if self.reply_text else self.text


class Attachment(db.Model):  # type: ignore[name-defined]
    """A file on a message; bytes live on disk under their SHA-256."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    content_id: Mapped[str | None] = mapped_column(String(255))
    is_inline: Mapped[bool] = mapped_column(default=False)
    #: Set when the file was not kept (too large); the message still says it existed.
    skipped_reason: Mapped[str | None] = mapped_column(String(255))

    message: Mapped[Message] = relationship(back_populates="attachments")
