"""The points ledger (append-only), its balance projection, tiers and referrals."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from helpdesk.extensions import db
from helpdesk.models._types import JSONType, UTCDateTime, enum_type, utcnow


class EntryKind(enum.Enum):
    EARN = "earn"
    SPEND = "spend"
    EXPIRE = "expire"
    REVERSE = "reverse"


class EntryState(enum.Enum):
    #: Earned points wait out the return window before they can be spent.
    PENDING = "pending"
    POSTED = "posted"


class PointsEntry(db.Model):  # type: ignore[name-defined]
    """One posting. Earnings are lots (``remaining`` says what is left of them to spend or
    expire); spending and expiry take from lots oldest-first; a reversal copies the amount
    of the entry it references. Rows are never deleted and their amounts never change."""

    __tablename__ = "points_entries"
    __table_args__ = (
        Index("ix_points_entries_contact", "contact_id", "created_at"),
        Index("ix_points_entries_lots", "contact_id", "kind", "remaining"),
        Index("ix_points_entries_pending", "state", "matures_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    kind: Mapped[EntryKind] = mapped_column(enum_type(EntryKind, 16))
    state: Mapped[EntryState] = mapped_column(enum_type(EntryState, 16), default=EntryState.POSTED)
    #: Signed: positive for earnings, negative for spending, expiry and reversed earnings.
    points: Mapped[int] = mapped_column()
    #: Idempotency: awarding twice with the same key posts once.
    key: Mapped[str] = mapped_column(String(200), unique=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
    #: For a reversal, the entry it undoes. A partly refunded order's earning can have
    #: several; together they never take back more than it earned.
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("points_entries.id"), index=True)
    #: For an order's earning: the amount (net of refunds by then) it was earned on, so a
    #: later refund takes back the same share of these points, whatever today's rules say.
    order_amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    #: Lot bookkeeping on earnings: what is left to spend or expire (a projection).
    remaining: Mapped[int] = mapped_column(default=0)
    #: For spending and expiry: which lots gave how much, [[lot_id, points], ...].
    allocations: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    matures_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PointsBalance(db.Model):  # type: ignore[name-defined]
    """The ledger summed per contact, updated in the same transaction as each posting."""

    __tablename__ = "points_balances"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    available: Mapped[int] = mapped_column(default=0)
    pending: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LoyaltyTier(db.Model):  # type: ignore[name-defined]
    """A level reached by points earned in the qualifying period; admins set thresholds."""

    __tablename__ = "loyalty_tiers"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    threshold: Mapped[int] = mapped_column()
    rank: Mapped[int] = mapped_column()


class ContactTier(db.Model):  # type: ignore[name-defined]
    """A contact's tier; when earnings drop below it they keep it until ``grace_until``."""

    __tablename__ = "contact_tiers"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    tier_key: Mapped[str] = mapped_column(String(32))
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    grace_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReferralCode(db.Model):  # type: ignore[name-defined]
    """A contact's code for inviting friends; where they were when they shared it."""

    __tablename__ = "referral_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), unique=True
    )
    code: Mapped[str] = mapped_column(String(16), unique=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReferralStatus(enum.Enum):
    PENDING = "pending"
    REWARDED = "rewarded"
    BLOCKED = "blocked"


class Referral(db.Model):  # type: ignore[name-defined]
    """A friend signed up with a code; both are rewarded after the friend's first paid order."""

    __tablename__ = "referrals"

    id: Mapped[int] = mapped_column(primary_key=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    #: A contact can be referred once.
    referee_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), unique=True)
    code: Mapped[str] = mapped_column(String(16))
    status: Mapped[ReferralStatus] = mapped_column(enum_type(ReferralStatus, 16))
    #: Why it was blocked: self_referral, same_email, same_device, existing_customer.
    block_reason: Mapped[str | None] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rewarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
