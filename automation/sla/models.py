"""SLA policies, their business-hours calendars, and the due times tracked per ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from helpdesk.extensions import db
from helpdesk.models._types import JSONType, UTCDateTime, utcnow

from .hours import Calendar


class BusinessCalendar(db.Model):  # type: ignore[name-defined]
    """Weekly opening hours in a timezone, with holidays."""

    __tablename__ = "sla_calendars"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    #: {"mon": [["09:00", "17:00"]], ...}
    hours: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: ["2025-12-25", ...]
    holidays: Mapped[list[str]] = mapped_column(JSONType, default=list)

    def to_calendar(self) -> Calendar:
        return Calendar.from_json(self.timezone, self.hours or {}, self.holidays or [])


class SlaPolicy(db.Model):  # type: ignore[name-defined]
    """Targets in business minutes for tickets that match; the first matching policy applies."""

    __tablename__ = "sla_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    position: Mapped[int] = mapped_column(default=0)
    is_enabled: Mapped[bool] = mapped_column(default=True)
    #: Empty lists match every ticket.
    priorities: Mapped[list[str]] = mapped_column(JSONType, default=list)
    channels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    first_response_minutes: Mapped[int | None] = mapped_column()
    resolution_minutes: Mapped[int | None] = mapped_column()
    #: Stop the resolution clock while the ticket waits on the customer.
    pause_when_pending: Mapped[bool] = mapped_column(default=True)
    calendar_id: Mapped[int | None] = mapped_column(
        ForeignKey("sla_calendars.id", ondelete="SET NULL")
    )

    calendar: Mapped[BusinessCalendar | None] = relationship()

    def matches(self, *, priority: str, channel: str) -> bool:
        return (not self.priorities or priority in self.priorities) and (
            not self.channels or channel in self.channels
        )


class TicketSla(db.Model):  # type: ignore[name-defined]
    """The SLA clock of one ticket."""

    __tablename__ = "sla_ticket_clocks"
    __table_args__ = (
        Index("ix_sla_first_response_due", "first_response_due_at"),
        Index("ix_sla_resolution_due", "resolution_due_at"),
    )

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("sla_policies.id", ondelete="SET NULL")
    )
    first_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_met_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Business minutes spent paused, already added to ``resolution_due_at``.
    paused_minutes: Mapped[float] = mapped_column(default=0.0)
    first_response_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    policy: Mapped[SlaPolicy | None] = relationship()

    @property
    def is_breached(self) -> bool:
        return (
            self.first_response_breached_at is not None or self.resolution_breached_at is not None
        )
