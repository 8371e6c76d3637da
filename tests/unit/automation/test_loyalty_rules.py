"""Loyalty rules without a database: points per spend, tiers with grace, email likeness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from automation.loyalty.rules import (
    Tier,
    TierState,
    next_tier_state,
    normalise_email,
    points_for_spend,
    points_to_reverse,
    qualified_tier,
)

NOW = datetime(2025, 5, 14, tzinfo=UTC)
TIERS = [
    Tier("bronze", 0, 0),
    Tier("silver", 500, 1),
    Tier("gold", 1500, 2),
    Tier("platinum", 5000, 3),
]


def test_one_point_per_ten_spent_rounded_down():
    assert points_for_spend(Decimal("95.00"), Decimal("10")) == 9
    assert points_for_spend(Decimal("9.99"), Decimal("10")) == 0
    assert points_for_spend(Decimal("-5"), Decimal("10")) == 0


def test_qualified_tier_by_threshold():
    assert qualified_tier(TIERS, 0).key == "bronze"
    assert qualified_tier(TIERS, 499).key == "bronze"
    assert qualified_tier(TIERS, 500).key == "silver"
    assert qualified_tier(TIERS, 9999).key == "platinum"


def test_moving_up_is_immediate_and_clears_grace():
    state = next_tier_state(TierState(TIERS[1], NOW), TIERS[2], NOW, 90)
    assert state == TierState(TIERS[2], None)


def test_moving_down_waits_for_the_grace_period():
    gold = TierState(TIERS[2], None)
    started = next_tier_state(gold, TIERS[0], NOW, 90)
    assert started == TierState(TIERS[2], NOW + timedelta(days=90))
    assert next_tier_state(started, TIERS[0], NOW + timedelta(days=89), 90) == started
    assert next_tier_state(started, TIERS[1], NOW + timedelta(days=90), 90) == TierState(
        TIERS[1], None
    )


def test_email_likeness_ignores_case_tags_and_gmail_dots():
    assert normalise_email("Ada.Lovelace+promo@GoogleMail.com") == "adalovelace@gmail.com"
    assert normalise_email("ada.lovelace@example.com") == "ada.lovelace@example.com"
    assert normalise_email("ada+x@example.com") == "ada@example.com"


def test_a_refund_takes_back_its_share_of_the_points_rounded_down():
    # 9 points earned on 95.00; 50.00 refunded is 52.6 % of it: 4.7 points, 4 taken back.
    assert points_to_reverse(9, Decimal("95.00"), Decimal("45.00")) == 4
    assert points_to_reverse(9, Decimal("95.00"), Decimal("95.00")) == 0
    assert points_to_reverse(9, Decimal("95.00"), Decimal("0.00")) == 9
    assert points_to_reverse(9, Decimal("95.00"), Decimal("0.01")) == 8


def test_a_refund_never_takes_back_more_than_was_earned():
    assert points_to_reverse(9, Decimal("95.00"), Decimal("-5.00")) == 9
    assert points_to_reverse(9, Decimal("95.00"), Decimal("120.00")) == 0
    assert points_to_reverse(0, Decimal("95.00"), Decimal("10.00")) == 0
    assert points_to_reverse(9, Decimal("0.00"), Decimal("0.00")) == 0
