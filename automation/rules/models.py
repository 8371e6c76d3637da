"""Rules and their immutable versions, the run log, time-trigger firings, webhook deliveries,
and activities shops report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from helpdesk.extensions import db
from helpdesk.models._types import JSONType, UTCDateTime, utcnow


class Rule(db.Model):  # type: ignore[name-defined]
    """A rule's identity, switch and place in the order; its content lives in versions."""

    __tablename__ = "automation_rules"
    __table_args__ = (
        Index("ix_automation_rules_trigger", "trigger_type", "is_enabled", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: Copied from the current version so the engine finds rules for an event by index.
    trigger_type: Mapped[str] = mapped_column(String(64))
    is_enabled: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)
    current_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("automation_rule_versions.id", use_alter=True, ondelete="SET NULL")
    )
    #: Signs webhook bodies (HMAC-SHA256); one per rule so a leak is contained.
    webhook_secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    current_version: Mapped[RuleVersion | None] = relationship(
        foreign_keys=[current_version_id], post_update=True
    )

    @property
    def definition(self) -> dict[str, Any]:
        return self.current_version.definition if self.current_version else {}


class RuleVersion(db.Model):  # type: ignore[name-defined]
    """One saved state of a rule; never updated after insert."""

    __tablename__ = "automation_rule_versions"
    __table_args__ = (UniqueConstraint("rule_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("automation_rules.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column()
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by_label: Mapped[str] = mapped_column(String(200), default="")


class RuleRun(db.Model):  # type: ignore[name-defined]
    """A rule that matched an event: what it saw and what its actions did."""

    __tablename__ = "automation_rule_runs"
    __table_args__ = (
        Index("ix_automation_rule_runs_ticket", "ticket_id", "created_at"),
        Index("ix_automation_rule_runs_rule", "rule_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("automation_rules.id", ondelete="CASCADE"))
    rule_version_id: Mapped[int] = mapped_column(
        ForeignKey("automation_rule_versions.id", ondelete="CASCADE")
    )
    version_number: Mapped[int] = mapped_column()
    trigger: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    #: What the event was about, e.g. "ticket:12", "order:7".
    subject: Mapped[str] = mapped_column(String(120), default="")
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    #: "ok" when every action succeeded or was skipped, "error" otherwise.
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    rule: Mapped[Rule] = relationship()


class RuleFiring(db.Model):  # type: ignore[name-defined]
    """A time trigger that fired; the unique key stops a second firing in the same window."""

    __tablename__ = "automation_rule_firings"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("automation_rules.id", ondelete="CASCADE"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(db.Model):  # type: ignore[name-defined]
    """A webhook call a rule queued; sent by a job after commit, retried with backoff."""

    __tablename__ = "automation_webhook_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("automation_rules.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    body: Mapped[str] = mapped_column(Text)
    #: queued, sending, sent, failed
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    response_status: Mapped[int | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReportedActivity(db.Model):  # type: ignore[name-defined]
    """Something a customer did that a shop told us about (a review, a shared post, a visit)."""

    __tablename__ = "automation_activities"
    __table_args__ = (Index("ix_automation_activities_contact", "contact_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: The shop's id for it; a repeated report with the same id is stored once.
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    api_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
