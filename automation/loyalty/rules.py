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


def points_to_reverse(earned: int, earned_on: Decimal, net_now: Decimal) -> int:
    """How many of ``earned`` points a refund takes back in all: the refunded share of the
    amount they were earned on, rounded down (the customer keeps the fraction), and every
    point once nothing of that amount is left. Never more than ``earned``, never below 0."""
    if earned <= 0 or earned_on <= 0 or net_now >= earned_on:
        return 0
    if net_now <= 0:
        return earned
    share = (earned_on - net_now) / earned_on
    return min(earned, int((earned * share).to_integral_value(rounding=ROUND_FLOOR)))


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
