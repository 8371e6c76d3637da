"""Incentive policies (versioned), grants, vouchers, redemptions and budget postings."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from helpdesk.extensions import db
from helpdesk.models._types import JSONType, UTCDateTime, enum_type, utcnow

from .policy import BudgetPeriod, PolicyTerms, RewardKind

Money = Numeric(12, 2)


class GrantStatus(enum.Enum):
    PENDING_APPROVAL = "pending_approval"
    GRANTED = "granted"
    REJECTED = "rejected"


class VoucherStatus(enum.Enum):
    PENDING_APPROVAL = "pending_approval"
    ISSUED = "issued"
    SENT = "sent"
    REDEEMED = "redeemed"
    EXPIRED = "expired"
    VOID = "void"

    @property
    def is_usable(self) -> bool:
        return self in (VoucherStatus.ISSUED, VoucherStatus.SENT)


class IncentivePolicy(db.Model):  # type: ignore[name-defined]
    """One version of an admin-defined policy; editing adds the next version, old ones stay."""

    __tablename__ = "incentive_policies"
    __table_args__ = (UniqueConstraint("key", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(default=1)
    is_current: Mapped[bool] = mapped_column(default=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[RewardKind] = mapped_column(enum_type(RewardKind))
    value: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    valid_days: Mapped[int | None] = mapped_column()
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    minimum_order: Mapped[Decimal | None] = mapped_column(Money)
    is_holder_only: Mapped[bool] = mapped_column(default=True)
    cap_count: Mapped[int | None] = mapped_column()
    cap_window_days: Mapped[int | None] = mapped_column()
    budget_amount: Mapped[Decimal | None] = mapped_column(Money)
    budget_period: Mapped[BudgetPeriod | None] = mapped_column(enum_type(BudgetPeriod, 16))
    approval_threshold: Mapped[Decimal | None] = mapped_column(Money)
    cost_estimate: Mapped[Decimal | None] = mapped_column(Money)
    #: After a refund the voucher becomes usable again (True) or stays void (False).
    restores_on_refund: Mapped[bool] = mapped_column(default=True)
    #: Shop-side details, e.g. {"shopify_product_id": "gid://shopify/Product/1"} for a free item.
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")

    def terms(self) -> PolicyTerms:
        """The pure view of this version, for ``policy.evaluate``."""
        return PolicyTerms(
            key=self.key,
            kind=self.kind,
            value=Decimal(self.value),
            version=self.version,
            policy_id=self.id,
            currency=self.currency,
            valid_days=self.valid_days,
            valid_until=self.valid_until,
            minimum_order=self.minimum_order,
            is_holder_only=self.is_holder_only,
            cap_count=self.cap_count,
            cap_window_days=self.cap_window_days,
            budget_amount=self.budget_amount,
            budget_period=self.budget_period,
            approval_threshold=self.approval_threshold,
            cost_estimate=self.cost_estimate,
            conditions=dict(self.conditions or {}),
            is_active=self.is_active,
        )

    def __repr__(self) -> str:
        return f"<IncentivePolicy {self.key} v{self.version}>"


class IncentiveGrant(db.Model):  # type: ignore[name-defined]
    """One decision to reward a contact; ``grant_key`` makes asking twice harmless."""

    __tablename__ = "incentive_grants"
    __table_args__ = (Index("ix_incentive_grants_cap", "contact_id", "policy_key", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    grant_key: Mapped[str] = mapped_column(String(200), unique=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("incentive_policies.id"))
    policy_key: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    status: Mapped[GrantStatus] = mapped_column(enum_type(GrantStatus))
    kind: Mapped[RewardKind] = mapped_column(enum_type(RewardKind))
    value: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    cost: Mapped[Decimal] = mapped_column(Money)
    reason: Mapped[str] = mapped_column(String(500), default="")
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column()
    actor_label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decision_note: Mapped[str] = mapped_column(String(500), default="")
    #: The points ledger entry for a points reward, once granted.
    points_entry_id: Mapped[int | None] = mapped_column()

    policy: Mapped[IncentivePolicy] = relationship()
    voucher: Mapped[Voucher | None] = relationship(back_populates="grant", uselist=False)


class Voucher(db.Model):  # type: ignore[name-defined]
    """A single-use code; bound to its contact unless the policy makes it shareable."""

    __tablename__ = "vouchers"
    # Partial indexes: bulk codes (no grant, no holder, no expiry) stay out of them, which
    # keeps bulk generation fast.
    __table_args__ = (
        Index(
            "ix_vouchers_contact_status",
            "contact_id",
            "status",
            sqlite_where=text("contact_id IS NOT NULL"),
            postgresql_where=text("contact_id IS NOT NULL"),
        ),
        Index(
            "ix_vouchers_grant_unique",
            "grant_id",
            unique=True,
            sqlite_where=text("grant_id IS NOT NULL"),
            postgresql_where=text("grant_id IS NOT NULL"),
        ),
        Index(
            "ix_vouchers_expiring",
            "expires_at",
            sqlite_where=text("expires_at IS NOT NULL"),
            postgresql_where=text("expires_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Normalised (no hyphens); shown grouped as XXXX-XXXX-XXXX.
    code: Mapped[str] = mapped_column(String(16), unique=True)
    grant_id: Mapped[int | None] = mapped_column(ForeignKey("incentive_grants.id"))
    policy_id: Mapped[int] = mapped_column(ForeignKey("incentive_policies.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    #: Bulk-generated codes share a batch name.
    batch: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[RewardKind] = mapped_column(enum_type(RewardKind))
    value: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    minimum_order: Mapped[Decimal | None] = mapped_column(Money)
    is_holder_only: Mapped[bool] = mapped_column(default=True)
    restores_on_refund: Mapped[bool] = mapped_column(default=True)
    status: Mapped[VoucherStatus] = mapped_column(enum_type(VoucherStatus))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Where the code was pushed: {"shopify": "gid://…", "woocommerce": "123"}.
    shop_refs: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=dict)

    grant: Mapped[IncentiveGrant | None] = relationship(back_populates="voucher")
    policy: Mapped[IncentivePolicy] = relationship()

    @property
    def display_code(self) -> str:
        from .codes import format_code

        return format_code(self.code)


class VoucherRedemption(db.Model):  # type: ignore[name-defined]
    """A voucher used on an order; a reversal is a separate row, this one never changes."""

    __tablename__ = "voucher_redemptions"
    __table_args__ = (Index("ix_voucher_redemptions_voucher", "voucher_id", "redeemed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    voucher_id: Mapped[int] = mapped_column(ForeignKey("vouchers.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    #: The shop's order number the code was used on.
    order_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    order_total: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    redeemed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_label: Mapped[str] = mapped_column(String(200), default="")

    voucher: Mapped[Voucher] = relationship()
    reversal: Mapped[RedemptionReversal | None] = relationship(
        back_populates="redemption", uselist=False
    )


class RedemptionReversal(db.Model):  # type: ignore[name-defined]
    """A refund undid a redemption; at most one per redemption."""

    __tablename__ = "redemption_reversals"

    id: Mapped[int] = mapped_column(primary_key=True)
    redemption_id: Mapped[int] = mapped_column(ForeignKey("voucher_redemptions.id"), unique=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
    #: What became of the voucher: "restored" (usable again) or "void".
    outcome: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_label: Mapped[str] = mapped_column(String(200), default="")

    redemption: Mapped[VoucherRedemption] = relationship(back_populates="reversal")


class BudgetAccount(db.Model):  # type: ignore[name-defined]
    """A policy's money for one period; ``spent_cents`` is the sum of its postings, kept in
    step by a conditional update that refuses to pass the limit."""

    __tablename__ = "incentive_budget_accounts"
    __table_args__ = (UniqueConstraint("policy_key", "period_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_key: Mapped[str] = mapped_column(String(64))
    period: Mapped[BudgetPeriod] = mapped_column(enum_type(BudgetPeriod, 16))
    period_start: Mapped[date] = mapped_column(Date)
    #: Whole cents, so ``spent + cost <= limit`` is exact on SQLite too (no float NUMERIC).
    limit_cents: Mapped[int] = mapped_column()
    spent_cents: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str | None] = mapped_column(String(3))


class BudgetPosting(db.Model):  # type: ignore[name-defined]
    """One movement on a budget account: a grant's cost, or its release when rejected."""

    __tablename__ = "incentive_budget_postings"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("incentive_budget_accounts.id"), index=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("incentive_grants.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    memo: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IncentiveCapLock(db.Model):  # type: ignore[name-defined]
    """A row to lock while counting a contact's grants under a policy's cap."""

    __tablename__ = "incentive_cap_locks"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    policy_key: Mapped[str] = mapped_column(String(64), primary_key=True)


class CodeGuessWindow(db.Model):  # type: ignore[name-defined]
    """Unknown codes a client tried in one time window; shared by every process."""

    __tablename__ = "voucher_guess_windows"

    client: Mapped[str] = mapped_column(String(80), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer, primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
