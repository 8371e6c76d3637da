"""Tickets, their tags and participants, saved views and canned replies."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from channels.base import IdentityKind
from helpdesk.extensions import db

from ._types import JSONType, UTCDateTime, enum_type, utcnow

if TYPE_CHECKING:  # pragma: no cover
    from .contacts import Contact
    from .users import Team, User


class TicketStatus(enum.Enum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    SOLVED = "solved"
    CLOSED = "closed"

    @property
    def is_active(self) -> bool:
        """New and open tickets wait on the team; the rest wait on the customer or are done."""
        return self in (TicketStatus.NEW, TicketStatus.OPEN)

    @property
    def is_done(self) -> bool:
        return self in (TicketStatus.SOLVED, TicketStatus.CLOSED)


class Priority(enum.Enum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


ticket_tags = Table(
    "ticket_tags",
    db.metadata,
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
    Column("ticket_id", ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
)


class Tag(db.Model):  # type: ignore[name-defined]
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class Ticket(db.Model):  # type: ignore[name-defined]
    __tablename__ = "tickets"
    __table_args__ = (
        # The inbox lists are keyset-paginated on (last_activity_at, id) within a queue.
        Index("ix_tickets_queue", "is_active", "last_activity_at", "id"),
        Index("ix_tickets_team_queue", "team_id", "is_active", "last_activity_at", "id"),
        Index("ix_tickets_assignee_queue", "assignee_id", "is_active", "last_activity_at", "id"),
        Index("ix_tickets_status_activity", "status", "last_activity_at", "id"),
        Index("ix_tickets_channel_queue", "channel", "is_active", "last_activity_at", "id"),
        Index("ix_tickets_contact_channel", "contact_id", "channel", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[TicketStatus] = mapped_column(enum_type(TicketStatus), default=TicketStatus.NEW)
    #: Mirrors ``status.is_active`` so the busiest list (new + open) is one index range.
    is_active: Mapped[bool] = mapped_column(default=True)
    priority: Mapped[Priority] = mapped_column(enum_type(Priority), default=Priority.NORMAL)
    channel: Mapped[str] = mapped_column(String(32))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    language: Mapped[str | None] = mapped_column(String(16))
    #: Which of our addresses the conversation uses ("email:3"); replies leave from it.
    inbox: Mapped[str | None] = mapped_column(String(120))
    #: The chat session, Telegram chat or API conversation this ticket continues.
    conversation_id: Mapped[str | None] = mapped_column(String(200), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    solved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reopen_count: Mapped[int] = mapped_column(default=0)
    #: True while a customer message waits that no agent has opened yet.
    is_unread: Mapped[bool] = mapped_column(default=True)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    #: A follow-up opened because the old ticket was closed too long ago.
    follows_up_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))

    contact: Mapped[Contact] = relationship()
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    team: Mapped[Team | None] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=ticket_tags, order_by="Tag.name")
    participants: Mapped[list[TicketParticipant]] = relationship(
        back_populates="ticket", cascade="all, delete-orphan"
    )

    @property
    def number(self) -> int:
        """The number customers and agents quote (``#1234``)."""
        return self.id

    def set_status(self, status: TicketStatus) -> None:
        """Keep ``is_active`` in step; only operations call this."""
        self.status = status
        self.is_active = status.is_active


class TicketParticipant(db.Model):  # type: ignore[name-defined]
    """Someone besides the contact on the conversation (an email Cc)."""

    __tablename__ = "ticket_participants"
    __table_args__ = (UniqueConstraint("ticket_id", "kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[IdentityKind] = mapped_column(enum_type(IdentityKind, 16))
    value: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(200))

    ticket: Mapped[Ticket] = relationship(back_populates="participants")


class SavedView(db.Model):  # type: ignore[name-defined]
    """A named set of inbox filters; personal unless shared."""

    __tablename__ = "saved_views"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    filters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    is_shared: Mapped[bool] = mapped_column(default=False)


class CannedResponse(db.Model):  # type: ignore[name-defined]
    """A reusable reply; ``{{ contact.first_name }}`` style placeholders are filled in."""

    __tablename__ = "canned_responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    shortcut: Mapped[str] = mapped_column(String(64), unique=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
