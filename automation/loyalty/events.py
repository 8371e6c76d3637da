"""Events the loyalty operations send after commit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from helpdesk import events


@dataclass(frozen=True, slots=True)
class PointsPosted(events.Event):
    """A ledger entry was posted (earned, spent, expired, reversed, matured)."""

    name: ClassVar[str] = "points.posted"
    contact_id: int
    entry_id: int
    kind: str
    points: int


@dataclass(frozen=True, slots=True)
class TierChanged(events.Event):
    name: ClassVar[str] = "loyalty.tier_changed"
    contact_id: int
    old: str | None
    new: str


@dataclass(frozen=True, slots=True)
class ReferralRewarded(events.Event):
    name: ClassVar[str] = "referral.rewarded"
    referral_id: int
    referrer_id: int
    referee_id: int


CATALOGUE: tuple[type[events.Event], ...] = (PointsPosted, TierChanged, ReferralRewarded)
