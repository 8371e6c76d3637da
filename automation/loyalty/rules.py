"""Pure loyalty rules: points for an order, tiers with a grace period, email likeness."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

#: Seeded tiers: (key, name, threshold of points earned in the qualifying period).
DEFAULT_TIERS: tuple[tuple[str, str, int], ...] = (
    ("bronze", "Bronze", 0),
    ("silver", "Silver", 500),
    ("gold", "Gold", 1500),
    ("platinum", "Platinum", 5000),
)


def points_for_spend(amount: Decimal, unit: Decimal) -> int:
    """One point per ``unit`` of money spent, rounded down (1 per 10: 95.00 → 9)."""
    if amount <= 0 or unit <= 0:
        return 0
    return int((amount / unit).to_integral_value(rounding=ROUND_FLOOR))


@dataclass(frozen=True, slots=True)
class Tier:
    key: str
    threshold: int
    rank: int


def qualified_tier(tiers: Sequence[Tier], earned: int) -> Tier:
    """The highest tier whose threshold ``earned`` reaches (the lowest tier otherwise)."""
    ordered = sorted(tiers, key=lambda t: t.rank)
    best = ordered[0]
    for tier in ordered:
        if earned >= tier.threshold:
            best = tier
    return best


@dataclass(frozen=True, slots=True)
class TierState:
    tier: Tier
    grace_until: datetime | None


def next_tier_state(
    current: TierState | None, qualified: Tier, now: datetime, grace_days: int
) -> TierState:
    """Move up at once; move down only after a grace period that starts when earnings drop."""
    if current is None or qualified.rank >= current.tier.rank:
        return TierState(qualified, None)
    if current.grace_until is None:
        return TierState(current.tier, now + timedelta(days=grace_days))
    if now < current.grace_until:
        return current
    return TierState(qualified, None)


_GMAIL = {"gmail.com", "googlemail.com"}


def normalise_email(address: str | None) -> str:
    """Compare addresses as the mailbox sees them: case, +tags, and Gmail's dots."""
    value = (address or "").strip().lower()
    local, sep, domain = value.rpartition("@")
    if not sep:
        return value
    local = local.split("+", 1)[0]
    if domain in _GMAIL:
        local = local.replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"
