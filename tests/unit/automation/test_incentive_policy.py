"""Policy evaluation without a database: conditions, rewards, costs, caps, budgets, dry runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from automation.incentives.policy import (
    BudgetPeriod,
    Facts,
    PolicyError,
    PolicyTerms,
    RewardKind,
    budget_allows,
    cap_allows,
    check_terms,
    evaluate,
    needs_approval,
    period_start,
    simulate,
)

NOW = datetime(2025, 5, 14, 12, 0, tzinfo=UTC)


def terms(**kw):
    base = {"key": "apology", "kind": RewardKind.PERCENTAGE, "value": Decimal("10")}
    return PolicyTerms(**{**base, **kw})


def facts(**kw):
    return Facts(**{"at": NOW, "contact_id": 1, **kw})


def test_no_conditions_always_rewards():
    [reward] = evaluate(terms(valid_days=30), facts())
    assert reward.kind is RewardKind.PERCENTAGE
    assert reward.value == Decimal("10")
    assert reward.expires_at == NOW + timedelta(days=30)


def test_conditions_must_all_hold():
    policy = terms(conditions={"triggers": ["ticket.closed"], "min_reopens": 1})
    assert evaluate(policy, facts(trigger="ticket.closed", reopen_count=1))
    assert not evaluate(policy, facts(trigger="ticket.closed", reopen_count=0))
    assert not evaluate(policy, facts(trigger="survey.answered", reopen_count=3))


def test_survey_and_tag_conditions():
    unhappy = terms(conditions={"max_csat": 2, "tags_any": ["delivery", "damaged"]})
    assert evaluate(unhappy, facts(csat=1, tags=frozenset({"damaged"})))
    assert not evaluate(unhappy, facts(csat=4, tags=frozenset({"damaged"})))
    assert not evaluate(unhappy, facts(csat=None, tags=frozenset({"damaged"})))
    assert not evaluate(unhappy, facts(csat=1, tags=frozenset({"billing"})))


def test_fifth_purchase_and_tenure_conditions():
    fifth = terms(conditions={"paid_orders_equal": 5})
    assert evaluate(fifth, facts(paid_orders=5))
    assert not evaluate(fifth, facts(paid_orders=6))
    loyal = terms(conditions={"min_customer_days": 730})
    assert evaluate(loyal, facts(customer_since=NOW - timedelta(days=800)))
    assert not evaluate(loyal, facts(customer_since=NOW - timedelta(days=100)))
    second = terms(conditions={"paid_orders_equal": 1, "within_days_of_first_order": 30})
    assert evaluate(second, facts(paid_orders=1, first_order_at=NOW - timedelta(days=3)))
    assert not evaluate(second, facts(paid_orders=1, first_order_at=NOW - timedelta(days=45)))


def test_inactive_or_past_fixed_date_gives_nothing():
    assert not evaluate(terms(is_active=False), facts())
    assert not evaluate(terms(valid_until=NOW - timedelta(days=1)), facts())


def test_expiry_is_the_earlier_of_days_after_issue_and_fixed_date():
    [reward] = evaluate(terms(valid_days=30, valid_until=NOW + timedelta(days=10)), facts())
    assert reward.expires_at == NOW + timedelta(days=10)


def test_costs_by_kind():
    fixed = terms(kind=RewardKind.FIXED, value=Decimal("15"), currency="EUR")
    assert evaluate(fixed, facts())[0].cost == Decimal("15.00")
    points = terms(kind=RewardKind.LOYALTY_POINTS, value=Decimal("250"))
    [reward] = evaluate(points, facts())
    assert reward.points == 250 and reward.cost == Decimal("2.50")
    pct = terms(value=Decimal("10"))
    assert evaluate(pct, facts(average_order_value=Decimal("80")))[0].cost == Decimal("8.00")
    assert evaluate(terms(cost_estimate=Decimal("6")), facts())[0].cost == Decimal("6.00")
    shipping = terms(
        kind=RewardKind.FREE_SHIPPING, value=Decimal("0"), cost_estimate=Decimal("4.9")
    )
    assert evaluate(shipping, facts())[0].cost == Decimal("4.90")


def test_value_override_for_goodwill():
    fixed = terms(kind=RewardKind.FIXED, value=Decimal("10"), currency="EUR")
    assert evaluate(fixed, facts(), value=Decimal("40"))[0].cost == Decimal("40.00")


def test_approval_above_threshold_only():
    policy = terms(approval_threshold=Decimal("20"))
    assert not needs_approval(policy, Decimal("20"))
    assert needs_approval(policy, Decimal("20.01"))
    assert not needs_approval(terms(), Decimal("1000"))


@pytest.mark.parametrize(
    "bad",
    [
        {"value": Decimal("0")},
        {"value": Decimal("150")},
        {"kind": RewardKind.FIXED, "value": Decimal("5")},  # no currency
        {"cap_count": 2},  # no window
        {"budget_amount": Decimal("100")},  # no period
        {"conditions": {"moon_phase": "full"}},
        {"kind": RewardKind.LOYALTY_POINTS, "value": Decimal("2.5")},
    ],
)
def test_nonsense_terms_are_refused(bad):
    with pytest.raises(PolicyError):
        check_terms(terms(**bad))


def test_cap_counts_only_grants_inside_the_window():
    policy = terms(cap_count=2, cap_window_days=90)
    assert cap_allows(policy, [NOW - timedelta(days=10)], NOW)
    assert not cap_allows(policy, [NOW - timedelta(days=10), NOW - timedelta(days=80)], NOW)
    assert cap_allows(policy, [NOW - timedelta(days=10), NOW - timedelta(days=91)], NOW)
    assert cap_allows(terms(), [NOW] * 100, NOW)


def test_budget_periods_start_on_calendar_boundaries():
    assert period_start(BudgetPeriod.MONTH, NOW) == date(2025, 5, 1)
    assert period_start(BudgetPeriod.QUARTER, NOW) == date(2025, 4, 1)
    assert period_start(BudgetPeriod.YEAR, NOW) == date(2025, 1, 1)
    policy = terms(budget_amount=Decimal("100"), budget_period=BudgetPeriod.MONTH)
    assert budget_allows(policy, Decimal("90"), Decimal("10"))
    assert not budget_allows(policy, Decimal("90"), Decimal("10.01"))


def test_dry_run_applies_caps_budget_and_one_grant_per_ticket():
    policy = terms(
        kind=RewardKind.FIXED,
        value=Decimal("10"),
        currency="EUR",
        cap_count=2,
        cap_window_days=90,
        budget_amount=Decimal("30"),
        budget_period=BudgetPeriod.MONTH,
        conditions={"triggers": ["ticket.closed"]},
    )
    history = [
        facts(contact_id=1, ticket_id=1, trigger="ticket.closed", at=NOW),
        facts(contact_id=1, ticket_id=1, trigger="ticket.closed", at=NOW + timedelta(hours=1)),
        facts(contact_id=1, ticket_id=2, trigger="ticket.closed", at=NOW + timedelta(hours=2)),
        facts(contact_id=1, ticket_id=3, trigger="ticket.closed", at=NOW + timedelta(hours=3)),
        facts(contact_id=2, ticket_id=4, trigger="ticket.closed", at=NOW + timedelta(hours=4)),
        facts(contact_id=3, ticket_id=5, trigger="ticket.closed", at=NOW + timedelta(hours=5)),
        facts(contact_id=3, ticket_id=6, trigger="survey.answered", at=NOW + timedelta(hours=6)),
    ]
    run = simulate(policy, history)
    assert [g.outcome for g in run.grants] == [
        "issued",
        "duplicate",
        "issued",
        "cap_reached",
        "issued",
        "budget_exhausted",
    ]
    assert run.issued == 3
    assert run.cost == Decimal("30.00")
    assert run.contacts == frozenset({1, 2})
