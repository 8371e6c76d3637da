"""Surveys sent to contacts about a ticket, and their answers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from helpdesk.extensions import db
from helpdesk.models import Contact, Ticket
from helpdesk.models._types import UTCDateTime, utcnow


class Survey(db.Model):  # type: ignore[name-defined]
    """One CSAT (1-5) or NPS (0-10) question sent about a ticket; answered at most once."""

    __tablename__ = "surveys"
    __table_args__ = (
        Index("ix_surveys_ticket", "ticket_id", "answered_at"),
        Index("ix_surveys_contact", "contact_id", "answered_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # csat or nps
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    #: Random part of the signed link; with ``answered_at`` it makes the link single-use.
    nonce: Mapped[str] = mapped_column(String(32), unique=True)
    language: Mapped[str] = mapped_column(String(8), default="en")
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Who asked for it ("rule 4", "after solve").
    sent_by: Mapped[str] = mapped_column(String(200), default="")
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    score: Mapped[int | None] = mapped_column()
    comment: Mapped[str | None] = mapped_column(Text)

    ticket: Mapped[Ticket] = relationship()
    contact: Mapped[Contact] = relationship()

    @property
    def scale(self) -> range:
        return range(1, 6) if self.kind == "csat" else range(0, 11)
