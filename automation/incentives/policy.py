"""Pure policy evaluation: facts about a ticket and a contact in, rewards out.

Nothing here touches the database, so policies are unit-tested with plain
values and replayed over history for a dry run (``simulate``) before a rule
that uses them is switched on.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

_CENT = Decimal("0.01")
ZERO = Decimal("0")


class RewardKind(enum.Enum):
    PERCENTAGE = "percentage"
    FIXED = "fixed"
    FREE_SHIPPING = "free_shipping"
    FREE_ITEM = "free_item"
    STORE_CREDIT = "store_credit"
    LOYALTY_POINTS = "loyalty_points"

    @property
    def is_voucher(self) -> bool:
        """Everything but points is handed out as a code."""
        return self is not RewardKind.LOYALTY_POINTS

    @property
    def needs_currency(self) -> bool:
        return self in (RewardKind.FIXED, RewardKind.STORE_CREDIT)


class BudgetPeriod(enum.Enum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


#: Condition keys a policy may use, with what each compares.
CONDITIONS = {
    "triggers": "the event asking for the grant is one of these (ticket.closed …)",
    "tags_any": "the ticket carries at least one of these tags",
    "tags_all": "the ticket carries every one of these tags",
    "channels": "the ticket came in on one of these channels",
    "min_reopens": "the ticket was reopened at least this often",
    "max_csat": "the survey score is at most this (1 to 5)",
    "min_csat": "the survey score is at least this (1 to 5)",
    "has_survey_answer": "the customer answered a survey",
    "min_paid_orders": "the contact has at least this many paid orders",
    "paid_orders_equal": "the contact has exactly this many paid orders (the fifth purchase …)",
    "min_customer_days": "the contact has been a customer at least this many days",
    "min_total_spend": "the contact spent at least this much (net of refunds)",
    "min_order_total": "the order that triggered the grant is at least this much",
    "within_days_of_first_order": "the first order was at most this many days ago",
}


class PolicyError(ValueError):
    """A policy whose terms do not make sense."""


@dataclass(frozen=True, slots=True)
class Facts:
    """What is known about the ticket and the contact when a grant is asked for."""

    at: datetime
    contact_id: int | None = None
    ticket_id: int | None = None
    trigger: str | None = None
    ticket_status: str | None = None
    channel: str | None = None
    tags: frozenset[str] = frozenset()
    reopen_count: int = 0
    csat: int | None = None
    has_survey_answer: bool = False
    paid_orders: int = 0
    total_spend: Decimal = ZERO
    average_order_value: Decimal | None = None
    first_order_at: datetime | None = None
    customer_since: datetime | None = None
    order_id: int | None = None
    order_total: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PolicyTerms:
    """An incentive policy's terms as plain values (what the model row stores)."""

    key: str
    kind: RewardKind
    value: Decimal
    version: int = 1
    policy_id: int | None = None
    currency: str | None = None
    valid_days: int | None = None
    valid_until: datetime | None = None
    minimum_order: Decimal | None = None
    is_holder_only: bool = True
    cap_count: int | None = None
    cap_window_days: int | None = None
    budget_amount: Decimal | None = None
    budget_period: BudgetPeriod | None = None
    approval_threshold: Decimal | None = None
    cost_estimate: Decimal | None = None
    point_value: Decimal = Decimal("0.01")
    conditions: Mapping[str, Any] = field(default_factory=dict)
    is_active: bool = True


@dataclass(frozen=True, slots=True)
class Reward:
    """One thing to hand out; ``cost`` is what it is expected to cost us (budget, approval)."""

    kind: RewardKind
    value: Decimal
    cost: Decimal
    currency: str | None = None
    points: int | None = None
    expires_at: datetime | None = None
    minimum_order: Decimal | None = None
    is_holder_only: bool = True

    def describe(self) -> str:
        if self.kind is RewardKind.LOYALTY_POINTS:
            return f"{self.points} points"
        if self.kind is RewardKind.PERCENTAGE:
            return f"{self.value.normalize():f}% off"
        if self.kind is RewardKind.FREE_SHIPPING:
            return "free shipping"
        if self.kind is RewardKind.FREE_ITEM:
            return "a free item"
        label = "store credit" if self.kind is RewardKind.STORE_CREDIT else "off"
        return f"{self.value:.2f} {self.currency or ''} {label}".replace("  ", " ")


def check_terms(terms: PolicyTerms) -> PolicyTerms:
    """Refuse terms that cannot be honoured; return them unchanged otherwise."""
    if terms.value < 0:
        raise PolicyError("the value must not be negative")
    if terms.kind is RewardKind.PERCENTAGE and not ZERO < terms.value <= 100:
        raise PolicyError("a percentage must be above 0 and at most 100")
    if terms.kind is RewardKind.LOYALTY_POINTS and terms.value != terms.value.to_integral_value():
        raise PolicyError("points are whole numbers")
    if terms.kind.needs_currency and not terms.currency:
        raise PolicyError(f"a {terms.kind.value} reward needs a currency")
    if terms.kind in (RewardKind.FIXED, RewardKind.STORE_CREDIT) and terms.value <= 0:
        raise PolicyError("the amount must be above zero")
    if terms.valid_days is not None and terms.valid_days <= 0:
        raise PolicyError("validity must be at least one day")
    if (terms.cap_count is None) != (terms.cap_window_days is None):
        raise PolicyError("a cap needs both a count and a window in days")
    if terms.cap_count is not None and terms.cap_count < 1:
        raise PolicyError("a cap must allow at least one grant")
    if (terms.budget_amount is None) != (terms.budget_period is None):
        raise PolicyError("a budget needs both an amount and a period")
    unknown = sorted(set(terms.conditions) - set(CONDITIONS))
    if unknown:
        raise PolicyError(f"unknown condition(s): {', '.join(unknown)}")
    return terms


def matches(conditions: Mapping[str, Any], facts: Facts) -> bool:
    """Whether every condition holds for ``facts`` (no conditions: always)."""
    return all(_holds(name, wanted, facts) for name, wanted in conditions.items())


def _days(since: datetime | None, at: datetime) -> float | None:
    return None if since is None else (at - since).total_seconds() / 86400


def _holds(name: str, wanted: Any, f: Facts) -> bool:
    if name == "triggers":
        return f.trigger in set(wanted)
    if name == "tags_any":
        return bool(f.tags & set(wanted))
    if name == "tags_all":
        return set(wanted) <= f.tags
    if name == "channels":
        return f.channel in set(wanted)
    if name == "min_reopens":
        return f.reopen_count >= int(wanted)
    if name == "max_csat":
        return f.csat is not None and f.csat <= int(wanted)
    if name == "min_csat":
        return f.csat is not None and f.csat >= int(wanted)
    if name == "has_survey_answer":
        return f.has_survey_answer is bool(wanted)
    if name == "min_paid_orders":
        return f.paid_orders >= int(wanted)
    if name == "paid_orders_equal":
        return f.paid_orders == int(wanted)
    if name == "min_customer_days":
        days = _days(f.customer_since, f.at)
        return days is not None and days >= float(wanted)
    if name == "min_total_spend":
        return f.total_spend >= Decimal(str(wanted))
    if name == "min_order_total":
        return f.order_total is not None and f.order_total >= Decimal(str(wanted))
    if name == "within_days_of_first_order":
        days = _days(f.first_order_at, f.at)
        return days is not None and days <= float(wanted)
    raise PolicyError(f"unknown condition {name}")


def reward_cost(terms: PolicyTerms, facts: Facts, value: Decimal | None = None) -> Decimal:
    """What a reward is expected to cost: its amount, or an estimate for the other kinds."""
    value = terms.value if value is None else value
    if terms.kind in (RewardKind.FIXED, RewardKind.STORE_CREDIT):
        return value.quantize(_CENT)
    if terms.kind is RewardKind.LOYALTY_POINTS:
        return (value * terms.point_value).quantize(_CENT)
    if terms.cost_estimate is not None:
        return terms.cost_estimate.quantize(_CENT)
    if terms.kind is RewardKind.PERCENTAGE and facts.average_order_value is not None:
        return (facts.average_order_value * value / 100).quantize(_CENT)
    return ZERO.quantize(_CENT)


def expiry(terms: PolicyTerms, issued_at: datetime) -> datetime | None:
    """When a reward issued at ``issued_at`` stops being valid (the earlier limit wins)."""
    candidates = []
    if terms.valid_days is not None:
        candidates.append(issued_at + timedelta(days=terms.valid_days))
    if terms.valid_until is not None:
        candidates.append(terms.valid_until)
    return min(candidates) if candidates else None


def evaluate(policy: Any, facts: Facts, *, value: Decimal | None = None) -> list[Reward]:
    """Return the rewards ``policy`` grants for ``facts``: none when it does not apply.

    ``policy`` is a :class:`PolicyTerms` or anything with a ``terms()`` method
    (the model row). ``value`` overrides the policy's amount (a goodwill voucher).
    """
    terms: PolicyTerms = policy if isinstance(policy, PolicyTerms) else policy.terms()
    if not terms.is_active or not matches(terms.conditions, facts):
        return []
    expires_at = expiry(terms, facts.at)
    if expires_at is not None and expires_at <= facts.at:
        return []
    amount = terms.value if value is None else value
    points = None
    if terms.kind is RewardKind.LOYALTY_POINTS:
        points = int(amount.to_integral_value(rounding=ROUND_FLOOR))
        if points <= 0:
            return []
    return [
        Reward(
            kind=terms.kind,
            value=amount,
            cost=reward_cost(terms, facts, amount),
            currency=terms.currency,
            points=points,
            expires_at=expires_at,
            minimum_order=terms.minimum_order,
            is_holder_only=terms.is_holder_only,
        )
    ]


def needs_approval(terms: PolicyTerms, cost: Decimal) -> bool:
    """Above the threshold a lead must approve before anything is sent."""
    return terms.approval_threshold is not None and cost > terms.approval_threshold


def cap_allows(terms: PolicyTerms, previous_grants: Iterable[datetime], at: datetime) -> bool:
    """Whether one more grant fits the per-contact cap, given the contact's earlier grant times."""
    if terms.cap_count is None or terms.cap_window_days is None:
        return True
    since = at - timedelta(days=terms.cap_window_days)
    recent = sum(1 for t in previous_grants if t > since)
    return recent < terms.cap_count


def period_start(period: BudgetPeriod, at: datetime) -> date:
    """The first day of the budget period ``at`` falls in (UTC)."""
    day = at.astimezone(UTC).date()
    if period is BudgetPeriod.MONTH:
        return day.replace(day=1)
    if period is BudgetPeriod.QUARTER:
        return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    return date(day.year, 1, 1)


def budget_allows(terms: PolicyTerms, spent: Decimal, cost: Decimal) -> bool:
    return terms.budget_amount is None or spent + cost <= terms.budget_amount


@dataclass(frozen=True, slots=True)
class SimulatedGrant:
    facts: Facts
    reward: Reward | None
    outcome: str  # issued, pending_approval, cap_reached, budget_exhausted, duplicate


@dataclass(frozen=True, slots=True)
class DryRun:
    """What a policy would have done over a history of facts, in order."""

    grants: tuple[SimulatedGrant, ...]

    def count(self, outcome: str) -> int:
        return sum(1 for g in self.grants if g.outcome == outcome)

    @property
    def issued(self) -> int:
        return self.count("issued") + self.count("pending_approval")

    @property
    def contacts(self) -> frozenset[int]:
        return frozenset(
            g.facts.contact_id
            for g in self.grants
            if g.outcome in ("issued", "pending_approval") and g.facts.contact_id is not None
        )

    @property
    def cost(self) -> Decimal:
        return sum(
            (
                g.reward.cost
                for g in self.grants
                if g.reward and g.outcome in ("issued", "pending_approval")
            ),
            ZERO,
        )


def simulate(policy: Any, history: Sequence[Facts]) -> DryRun:
    """Replay ``policy`` over past facts with its caps, budget and idempotency applied."""
    terms: PolicyTerms = policy if isinstance(policy, PolicyTerms) else policy.terms()
    terms = replace(terms, is_active=True)
    granted: dict[int | None, list[datetime]] = defaultdict(list)
    spent: dict[date, Decimal] = defaultdict(lambda: ZERO)
    seen: set[tuple[int | None, int | None]] = set()
    out: list[SimulatedGrant] = []
    for facts in sorted(history, key=lambda f: f.at):
        rewards = evaluate(terms, facts)
        if not rewards:
            continue
        reward = rewards[0]
        once = (facts.ticket_id, facts.contact_id)
        if facts.ticket_id is not None and once in seen:
            out.append(SimulatedGrant(facts, reward, "duplicate"))
            continue
        if not cap_allows(terms, granted[facts.contact_id], facts.at):
            out.append(SimulatedGrant(facts, reward, "cap_reached"))
            continue
        bucket = period_start(terms.budget_period, facts.at) if terms.budget_period else date.min
        if not budget_allows(terms, spent[bucket], reward.cost):
            out.append(SimulatedGrant(facts, reward, "budget_exhausted"))
            continue
        seen.add(once)
        granted[facts.contact_id].append(facts.at)
        spent[bucket] += reward.cost
        outcome = "pending_approval" if needs_approval(terms, reward.cost) else "issued"
        out.append(SimulatedGrant(facts, reward, outcome))
    return DryRun(tuple(out))
