"""Inbound payloads that could not be parsed or ingested, kept whole for a retry."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from helpdesk.extensions import db

from ._types import UTCDateTime, utcnow


class QuarantinedItem(db.Model):  # type: ignore[name-defined]
    """One raw payload from any channel that failed on its way in, with the error."""

    __tablename__ = "quarantined_items"
    __table_args__ = (
        Index("ix_quarantined_items_open", "resolved_at", "created_at"),
        Index("ix_quarantined_items_digest", "channel", "raw_sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    #: Where it came from, readable by people and by the channel's reprocessor
    #: ("mailbox:3/uidvalidity:17/uid:42", "file:/tmp/a.eml").
    source: Mapped[str] = mapped_column(String(500))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    raw_sha256: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: What became of it: "ingested as message 12 on ticket #4", "dismissed by Ada".
    resolution: Mapped[str | None] = mapped_column(String(500))

    @property
    def is_resolved(self) -> bool:
        return self.resolved_at is not None

    @property
    def error_summary(self) -> str:
        """The last line of the error (the exception), for lists."""
        lines = [line for line in (self.error or "").strip().splitlines() if line.strip()]
        return lines[-1][:300] if lines else ""

    def __repr__(self) -> str:
        return f"<QuarantinedItem {self.id} {self.channel} {self.source!r}>"
