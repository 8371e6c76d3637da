"""Read-only figures for the incentives report: per-policy counts and money, budgets, the
approval queue, apology-voucher effectiveness, a bar chart's geometry and a CSV export.

Every figure is one aggregate query (``GROUP BY``) over the period, never a Python loop
over vouchers; Python only joins the few result rows. Money stays per currency: amounts
in different currencies are never added (``None`` is its own bucket: a percentage
policy's budget, for instance, has no currency). Periods are whole UTC days.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import (
    Numeric,
    String,
    and_,
    case,
    cast,
    distinct,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from helpdesk.extensions import db
from helpdesk.models import Order, OrderStatus, Ticket, utcnow
from helpdesk.models._types import UTCDateTime

from .models import (
    BudgetAccount,
    BudgetPosting,
    GrantStatus,
    IncentiveGrant,
    IncentivePolicy,
    RedemptionReversal,
    Voucher,
    VoucherRedemption,
    VoucherStatus,
)
from .policy import BudgetPeriod, RewardKind, period_start

#: Policies whose vouchers count as apologies: these keys, and keys starting with a prefix.
APOLOGY_POLICY_KEYS: frozenset[str] = frozenset({"apology-discount"})
APOLOGY_KEY_PREFIXES: tuple[str, ...] = ("apology",)
#: How long after an apology (or a closed ticket) a paid order counts as ordering again.
REPEAT_WINDOW_DAYS = 90
#: Below this many contacts in either group the comparison says nothing.
MIN_SAMPLE = 20

_CENT = Decimal("0.01")
_SALE = tuple(status for status in OrderStatus if status.counts_as_sale)
_FACE_VALUE = (RewardKind.FIXED, RewardKind.STORE_CREDIT)

Money = dict[str | None, Decimal]


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(_CENT, rounding=ROUND_HALF_UP)


def _add(into: Money, currency: str | None, amount: Any) -> None:
    into[currency] = _money(into.get(currency, Decimal("0")) + _money(amount))


def sorted_money(money: Money) -> list[tuple[str | None, Decimal]]:
    """Currencies in a stable order (no currency last) for display and export."""
    return sorted(money.items(), key=lambda item: (item[0] is None, item[0] or ""))


# ------------------------------------------------------------------ periods


@dataclass(frozen=True, slots=True)
class Period:
    """Whole UTC days from ``first`` to ``last``, both included."""

    first: date
    last: date
    preset: str = "custom"

    @property
    def starts_at(self) -> datetime:
        return datetime.combine(self.first, time.min, UTC)

    @property
    def ends_at(self) -> datetime:
        """The first moment after the period (exclusive bound)."""
        return datetime.combine(self.last + timedelta(days=1), time.min, UTC)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


PRESETS = ("this_month", "last_month", "this_quarter", "custom")
MAX_PERIOD_DAYS = 3660


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def preset_period(preset: str, today: date) -> Period:
    """The period a preset names, as of ``today`` (UTC)."""
    if preset == "last_month":
        last = _month_start(today) - timedelta(days=1)
        return Period(_month_start(last), last, preset)
    if preset == "this_quarter":
        first = period_start(BudgetPeriod.QUARTER, datetime.combine(today, time.min, UTC))
        end = _next_month(_next_month(_next_month(first)))
        return Period(first, end - timedelta(days=1), preset)
    first = _month_start(today)
    return Period(first, _next_month(first) - timedelta(days=1), "this_month")


def parse_period(args: Any, today: date | None = None) -> tuple[Period, list[str]]:
    """Read ``period``/``from``/``to`` from query arguments; fall back to this month with
    the reasons when they do not make sense. ``from`` and ``to`` alone mean custom."""
    today = today or utcnow().date()
    preset = args.get("period") or ("custom" if args.get("from") or args.get("to") else "")
    if preset != "custom":
        return preset_period(preset if preset in PRESETS else "this_month", today), []
    errors = []
    try:
        first = date.fromisoformat(args.get("from") or "")
        last = date.fromisoformat(args.get("to") or "")
    except ValueError:
        errors.append("dates")
    else:
        if last < first:
            errors.append("order")
        elif (last - first).days >= MAX_PERIOD_DAYS:
            errors.append("length")
        else:
            return Period(first, last, "custom"), []
    return preset_period("this_month", today), errors


def _budget_starts(period: Period) -> dict[BudgetPeriod, list[date]]:
    """The first days of every budget period (of each length) that overlaps ``period``."""
    out: dict[BudgetPeriod, list[date]] = {}
    for length, step in (
        (BudgetPeriod.MONTH, 1),
        (BudgetPeriod.QUARTER, 3),
        (BudgetPeriod.YEAR, 12),
    ):
        start = period_start(length, period.starts_at)
        starts = []
        while start <= period.last:
            starts.append(start)
            for _ in range(step):
                start = _next_month(start)
        out[length] = starts
    return out


# ------------------------------------------------------------------ SQL helpers


class plus_days(FunctionElement[datetime]):
    """``moment + N days`` on SQLite and PostgreSQL."""

    type = UTCDateTime()
    inherit_cache = True
    name = "plus_days"

    def __init__(self, moment: ColumnElement[Any], days: int) -> None:
        super().__init__(moment, literal_column(str(int(days))))


@compiles(plus_days, "sqlite")
def _plus_days_sqlite(element: plus_days, compiler: Any, **kw: Any) -> str:
    moment, days = list(element.clauses)
    # Same text layout as SQLAlchemy stores (with microseconds), so comparisons stay exact.
    return (
        f"strftime('%Y-%m-%d %H:%M:%f000', {compiler.process(moment, **kw)}, "
        f"'+{int(days.name)} days')"
    )


@compiles(plus_days, "postgresql")
def _plus_days_postgresql(element: plus_days, compiler: Any, **kw: Any) -> str:
    moment, days = list(element.clauses)
    return f"({compiler.process(moment, **kw)} + INTERVAL '{int(days.name)} days')"


def _within(column: Any, period: Period, until: datetime | None = None) -> ColumnElement[bool]:
    end = period.ends_at if until is None else min(period.ends_at, until)
    return and_(column >= period.starts_at, column < end)


def _count_if(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def is_apology_key(
    column: Any, keys: Iterable[str] | None = None, prefixes: Iterable[str] | None = None
) -> ColumnElement[bool]:
    """SQL: the policy key marks an apology (see ``APOLOGY_POLICY_KEYS``/``…_PREFIXES``)."""
    keys = APOLOGY_POLICY_KEYS if keys is None else frozenset(keys)
    prefixes = APOLOGY_KEY_PREFIXES if prefixes is None else tuple(prefixes)
    terms = [column.in_(sorted(keys))] if keys else []
    terms += [column.like(f"{prefix}%") for prefix in prefixes]
    return or_(*terms) if terms else false()


# ------------------------------------------------------------------ per-policy figures


@dataclass(frozen=True, slots=True)
class Budget:
    """Limit and use of a policy's budget over the budget periods overlapping the report."""

    limit: Decimal
    used: Decimal
    currency: str | None
    periods: int

    @property
    def share(self) -> float | None:
        return float(self.used / self.limit) if self.limit > 0 else None


@dataclass(slots=True)
class PolicyRow:
    key: str
    name: str
    kind: RewardKind | None
    is_active: bool
    issued: int = 0
    sent: int = 0
    redeemed: int = 0
    expired: int = 0
    void: int = 0
    pending: int = 0
    #: Of the codes issued in the period, how many are redeemed by now.
    issued_then_redeemed: int = 0
    points: int = 0
    cost: Money = field(default_factory=dict)
    revenue: Money = field(default_factory=dict)
    orders: int = 0
    budget: Budget | None = None

    @property
    def is_points(self) -> bool:
        return self.kind is RewardKind.LOYALTY_POINTS

    @property
    def redemption_rate(self) -> float | None:
        if self.is_points or not self.issued:
            return None
        return self.issued_then_redeemed / self.issued


@dataclass(slots=True)
class Totals:
    issued: int = 0
    sent: int = 0
    redeemed: int = 0
    expired: int = 0
    void: int = 0
    pending: int = 0
    issued_then_redeemed: int = 0
    vouchers_issued: int = 0
    points: int = 0
    cost: Money = field(default_factory=dict)
    revenue: Money = field(default_factory=dict)
    orders: int = 0
    budget_limit: Money = field(default_factory=dict)
    budget_used: Money = field(default_factory=dict)

    @property
    def redemption_rate(self) -> float | None:
        return self.issued_then_redeemed / self.vouchers_issued if self.vouchers_issued else None


@dataclass(frozen=True, slots=True)
class Report:
    period: Period
    rows: list[PolicyRow]
    totals: Totals
    pending_approvals: int
    generated_at: datetime


def _current_policies() -> dict[str, IncentivePolicy]:
    return {
        policy.key: policy
        for policy in db.session.scalars(
            select(IncentivePolicy).where(IncentivePolicy.is_current.is_(True))
        )
    }


def _voucher_counts(period: Period, now: datetime) -> list[Any]:
    v = Voucher
    lapsed = and_(
        v.status.in_((VoucherStatus.EXPIRED, VoucherStatus.ISSUED, VoucherStatus.SENT)),
        _within(v.expires_at, period, until=now),
    )
    issued = _within(v.issued_at, period)
    return list(
        db.session.execute(
            select(
                IncentivePolicy.key,
                _count_if(issued).label("issued"),
                _count_if(_within(v.sent_at, period)).label("sent"),
                _count_if(_within(v.voided_at, period)).label("void"),
                _count_if(lapsed).label("expired"),
                _count_if(and_(issued, v.status == VoucherStatus.REDEEMED)).label("cohort"),
            )
            .join(IncentivePolicy, IncentivePolicy.id == v.policy_id)
            .where(
                or_(
                    issued,
                    _within(v.sent_at, period),
                    _within(v.voided_at, period),
                    _within(v.expires_at, period, until=now),
                )
            )
            .group_by(IncentivePolicy.key)
        )
    )


def _grant_counts(period: Period) -> list[Any]:
    g = IncentiveGrant
    granted_at = func.coalesce(g.decided_at, g.created_at)
    points_granted = and_(
        g.kind == RewardKind.LOYALTY_POINTS,
        g.status == GrantStatus.GRANTED,
        _within(granted_at, period),
    )
    return list(
        db.session.execute(
            select(
                g.policy_key,
                _count_if(
                    and_(g.status == GrantStatus.PENDING_APPROVAL, _within(g.created_at, period))
                ).label("pending"),
                _count_if(points_granted).label("points_grants"),
                func.coalesce(func.sum(case((points_granted, g.value), else_=0)), 0).label(
                    "points"
                ),
            )
            .where(or_(_within(g.created_at, period), _within(granted_at, period)))
            .group_by(g.policy_key)
        )
    )


def _live_redemptions(period: Period) -> Any:
    """Redemptions in the period that no refund reversed, with their voucher and policy."""
    return (
        select(VoucherRedemption.id)
        .join(Voucher, Voucher.id == VoucherRedemption.voucher_id)
        .join(IncentivePolicy, IncentivePolicy.id == Voucher.policy_id)
        .outerjoin(RedemptionReversal, RedemptionReversal.redemption_id == VoucherRedemption.id)
        .where(_within(VoucherRedemption.redeemed_at, period), RedemptionReversal.id.is_(None))
    )


def _redemption_costs(period: Period) -> list[Any]:
    r, v = VoucherRedemption, Voucher
    currency = func.coalesce(r.currency, v.currency)
    cost = case(
        (v.kind.in_(_FACE_VALUE), v.value),
        (v.kind == RewardKind.PERCENTAGE, r.order_total * v.value / 100),
        else_=func.coalesce(IncentiveGrant.cost, IncentivePolicy.cost_estimate, 0),
    )
    query = (
        _live_redemptions(period)
        .outerjoin(IncentiveGrant, IncentiveGrant.id == v.grant_id)
        .with_only_columns(
            IncentivePolicy.key,
            currency.label("currency"),
            func.count(r.id).label("redeemed"),
            func.coalesce(func.sum(cast(cost, Numeric(14, 4))), 0).label("cost"),
        )
        .group_by(IncentivePolicy.key, currency)
    )
    return list(db.session.execute(query))


def _orders_using_codes(period: Period, *, per_policy: bool) -> list[Any]:
    """Each order once (per policy, or overall): the shop's order less refunds when known,
    else the total reported with the redemption."""
    r, o = VoucherRedemption, Order
    order_key = func.coalesce(r.order_ref, literal("redemption:") + cast(r.id, String)).label(
        "order_key"
    )
    amount = func.coalesce(o.total - func.coalesce(o.refunded_total, 0), r.order_total)
    currency = func.coalesce(o.currency, r.currency, Voucher.currency)
    columns = [order_key, amount.label("amount"), currency.label("currency")]
    if per_policy:
        columns.insert(0, IncentivePolicy.key.label("key"))
    orders = (
        _live_redemptions(period)
        .outerjoin(o, o.external_id == r.order_ref)
        .with_only_columns(*columns)
        .distinct()
        .subquery()
    )
    group = [orders.c.key] if per_policy else []
    return list(
        db.session.execute(
            select(
                *group,
                orders.c.currency,
                func.count().label("orders"),
                func.coalesce(func.sum(orders.c.amount), 0).label("revenue"),
            ).group_by(*group, orders.c.currency)
        )
    )


def _budgets(period: Period, policies: dict[str, IncentivePolicy]) -> dict[str, Budget]:
    """Limit and postings of the budget accounts whose periods overlap ``period``; a period
    of the current budget without an account yet (nothing spent) counts with its limit."""
    starts = _budget_starts(period)
    overlapping = or_(
        *[
            and_(BudgetAccount.period == length, BudgetAccount.period_start.in_(days))
            for length, days in starts.items()
        ]
    )
    used_by_account = (
        select(
            BudgetPosting.account_id,
            func.coalesce(func.sum(BudgetPosting.amount), 0).label("used"),
        )
        .group_by(BudgetPosting.account_id)
        .subquery()
    )
    accounts = db.session.execute(
        select(
            BudgetAccount.policy_key,
            BudgetAccount.period,
            BudgetAccount.period_start,
            BudgetAccount.limit_cents,
            BudgetAccount.currency,
            func.coalesce(used_by_account.c.used, 0).label("used"),
        )
        .outerjoin(used_by_account, used_by_account.c.account_id == BudgetAccount.id)
        .where(overlapping)
    ).all()
    limit: dict[str, Decimal] = defaultdict(Decimal)
    used: dict[str, Decimal] = defaultdict(Decimal)
    currency: dict[str, str | None] = {}
    seen: dict[str, set[tuple[BudgetPeriod, date]]] = defaultdict(set)
    for row in accounts:
        limit[row.policy_key] += Decimal(row.limit_cents) / 100
        used[row.policy_key] += _money(row.used)
        currency.setdefault(row.policy_key, row.currency)
        seen[row.policy_key].add((row.period, row.period_start))
    for key, policy in policies.items():
        if policy.budget_amount is None or policy.budget_period is None:
            continue
        missing = [
            start
            for start in starts[policy.budget_period]
            if (policy.budget_period, start) not in seen[key]
        ]
        limit[key] += _money(policy.budget_amount) * len(missing)
        currency.setdefault(key, policy.currency)
        seen[key].update((policy.budget_period, start) for start in missing)
    return {
        key: Budget(_money(limit[key]), _money(used[key]), currency.get(key), len(seen[key]))
        for key in seen
    }


def pending_approval_count() -> int:
    """Grants waiting for a lead now, whenever they were asked for."""
    return int(
        db.session.scalar(
            select(func.count(IncentiveGrant.id)).where(
                IncentiveGrant.status == GrantStatus.PENDING_APPROVAL
            )
        )
        or 0
    )


def incentive_report(period: Period, *, now: datetime | None = None) -> Report:
    """Per-policy figures for ``period`` with a totals row (money per currency)."""
    now = now or utcnow()
    policies = _current_policies()
    rows: dict[str, PolicyRow] = {}

    def row(key: str) -> PolicyRow:
        if key not in rows:
            policy = policies.get(key)
            rows[key] = PolicyRow(
                key=key,
                name=policy.name if policy else key,
                kind=policy.kind if policy else None,
                is_active=bool(policy and policy.is_active),
            )
        return rows[key]

    for key, policy in policies.items():
        if policy.is_active:
            row(key)
    for item in _voucher_counts(period, now):
        r = row(item.key)
        r.issued += int(item.issued)
        r.sent, r.void, r.expired = int(item.sent), int(item.void), int(item.expired)
        r.issued_then_redeemed = int(item.cohort)
    for item in _grant_counts(period):
        r = row(item.policy_key)
        r.pending = int(item.pending)
        r.issued += int(item.points_grants)
        r.points = int(_money(item.points))
    for item in _redemption_costs(period):
        r = row(item.key)
        r.redeemed += int(item.redeemed)
        _add(r.cost, item.currency, item.cost)
    for item in _orders_using_codes(period, per_policy=True):
        r = row(item.key)
        r.orders += int(item.orders)
        _add(r.revenue, item.currency, item.revenue)
    for key, budget in _budgets(period, policies).items():
        row(key).budget = budget

    totals = Totals()
    for r in rows.values():
        for name in ("issued", "sent", "redeemed", "expired", "void", "pending", "points"):
            setattr(totals, name, getattr(totals, name) + getattr(r, name))
        if not r.is_points:
            totals.vouchers_issued += r.issued
            totals.issued_then_redeemed += r.issued_then_redeemed
        for currency, amount in r.cost.items():
            _add(totals.cost, currency, amount)
        if r.budget is not None:
            _add(totals.budget_limit, r.budget.currency, r.budget.limit)
            _add(totals.budget_used, r.budget.currency, r.budget.used)
    # Overall revenue counts an order once even when codes of two policies were used on it.
    for item in _orders_using_codes(period, per_policy=False):
        totals.orders += int(item.orders)
        _add(totals.revenue, item.currency, item.revenue)

    ordered = sorted(rows.values(), key=lambda r: (not r.is_active, r.name.lower(), r.key))
    return Report(period, ordered, totals, pending_approval_count(), now)


def budget_use_now(
    policies: Sequence[IncentivePolicy], at: datetime | None = None
) -> dict[str, Decimal]:
    """What each budgeted policy spent in its current budget period (sum of postings)."""
    at = at or utcnow()
    current = or_(
        *[
            and_(
                BudgetAccount.period == length,
                BudgetAccount.period_start == period_start(length, at),
            )
            for length in BudgetPeriod
        ]
    )
    keys = [p.key for p in policies if p.budget_period is not None]
    if not keys:
        return {}
    spent = {
        key: _money(total)
        for key, period, total in db.session.execute(
            select(
                BudgetAccount.policy_key,
                BudgetAccount.period,
                func.coalesce(func.sum(BudgetPosting.amount), 0),
            )
            .join(BudgetPosting, BudgetPosting.account_id == BudgetAccount.id)
            .where(current, BudgetAccount.policy_key.in_(keys))
            .group_by(BudgetAccount.policy_key, BudgetAccount.period)
        )
        if any(p.key == key and p.budget_period == period for p in policies)
    }
    return {key: spent.get(key, _money(0)) for key in keys}


# ------------------------------------------------------------------ apology effectiveness


@dataclass(frozen=True, slots=True)
class Group:
    contacts: int
    ordered_again: int

    @property
    def share(self) -> float | None:
        return self.ordered_again / self.contacts if self.contacts else None


@dataclass(frozen=True, slots=True)
class ApologyComparison:
    """Contacts given an apology voucher in the period against contacts whose ticket was
    solved or closed in it without one: who placed a paid order within the window after."""

    period: Period
    with_voucher: Group
    without_voucher: Group
    window_days: int
    #: The window of the latest contacts reaches past now: shares may still grow.
    is_still_open: bool

    @property
    def difference(self) -> float | None:
        a, b = self.with_voucher.share, self.without_voucher.share
        return None if a is None or b is None else a - b

    @property
    def is_too_small(self) -> bool:
        return min(self.with_voucher.contacts, self.without_voucher.contacts) < MIN_SAMPLE


def _ordered_again(first_times: Any, window: int) -> Group:
    o = Order
    result = db.session.execute(
        select(
            func.count(distinct(first_times.c.contact_id)),
            func.count(distinct(o.contact_id)),
        )
        .select_from(first_times)
        .outerjoin(
            o,
            and_(
                o.contact_id == first_times.c.contact_id,
                o.status.in_(_SALE),
                o.placed_at > first_times.c.at,
                o.placed_at <= plus_days(first_times.c.at, window),
            ),
        )
    ).one()
    return Group(int(result[0] or 0), int(result[1] or 0))


def apology_effectiveness(
    period: Period,
    *,
    keys: Iterable[str] | None = None,
    prefixes: Iterable[str] | None = None,
    window_days: int = REPEAT_WINDOW_DAYS,
    now: datetime | None = None,
) -> ApologyComparison:
    """Share of contacts who ordered again within ``window_days`` of an apology voucher
    (granted in the period) against contacts with a ticket solved or closed in the period
    who got no apology voucher in it (counted from their first such ticket)."""
    g, t = IncentiveGrant, Ticket
    granted_at = func.coalesce(g.decided_at, g.created_at)
    apologised = (
        select(g.contact_id.label("contact_id"), func.min(granted_at).label("at"))
        .where(
            g.status == GrantStatus.GRANTED,
            is_apology_key(g.policy_key, keys, prefixes),
            _within(granted_at, period),
        )
        .group_by(g.contact_id)
        .subquery()
    )
    done_at = case(
        (
            and_(t.solved_at.is_not(None), or_(t.closed_at.is_(None), t.solved_at <= t.closed_at)),
            t.solved_at,
        ),
        else_=t.closed_at,
    )
    not_apologised = (
        select(t.contact_id.label("contact_id"), func.min(done_at).label("at"))
        .where(_within(done_at, period), t.contact_id.not_in(select(apologised.c.contact_id)))
        .group_by(t.contact_id)
        .subquery()
    )
    now = now or utcnow()
    return ApologyComparison(
        period=period,
        with_voucher=_ordered_again(apologised, window_days),
        without_voucher=_ordered_again(not_apologised, window_days),
        window_days=window_days,
        is_still_open=period.ends_at + timedelta(days=window_days) > now,
    )


# ------------------------------------------------------------------ chart


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    series: str
    label_x: float
    label_anchor: str


@dataclass(frozen=True, slots=True)
class ChartRow:
    name: str
    label_x: float
    label_y: float
    label_anchor: str
    bars: tuple[Bar, ...]


@dataclass(frozen=True, slots=True)
class BarChart:
    """Geometry of a horizontal bar chart (issued vs redeemed per policy), mirrored for RTL."""

    width: int
    height: int
    rows: tuple[ChartRow, ...]
    axis_x: float
    maximum: int


def bar_chart(
    rows: Sequence[PolicyRow], *, rtl: bool = False, width: int = 720, label_width: int = 200
) -> BarChart:
    """Lay out two bars per policy: issued and redeemed, scaled to the largest count."""
    bar, gap, group_gap, top = 14, 3, 14, 8
    value_room = 48
    shown = [r for r in rows if r.issued or r.redeemed]
    maximum = max([max(r.issued, r.redeemed) for r in shown] or [0])
    plot = width - label_width - value_room - 16
    out = []
    y = float(top)
    for r in shown:
        bars = []
        for offset, (series, value) in enumerate((("issued", r.issued), ("redeemed", r.redeemed))):
            length = round(plot * value / maximum, 1) if maximum else 0.0
            by = y + offset * (bar + gap)
            if rtl:
                x = width - label_width - length
                bars.append(Bar(x, by, length, bar, value, series, x - 6, "end"))
            else:
                x = float(label_width)
                bars.append(Bar(x, by, length, bar, value, series, x + length + 6, "start"))
        label_x = width - label_width + 8 if rtl else label_width - 8
        out.append(
            ChartRow(r.name, label_x, y + bar + gap / 2, "start" if rtl else "end", tuple(bars))
        )
        y += 2 * bar + gap + group_gap
    axis = float(width - label_width if rtl else label_width)
    return BarChart(width, int(y + top), tuple(out), axis, maximum)


# ------------------------------------------------------------------ CSV

CSV_COLUMNS = (
    "policy_key",
    "policy_name",
    "issued",
    "sent",
    "redeemed",
    "expired",
    "void",
    "pending_approval",
    "redemption_rate",
    "points_issued",
    "currency",
    "cost",
    "revenue",
    "orders",
    "budget_limit",
    "budget_used",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """Neutralise a text cell a spreadsheet would run as a formula (a leading quote)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _counts(row: PolicyRow | Totals) -> list[Any]:
    return [
        row.issued,
        row.sent,
        row.redeemed,
        row.expired,
        row.void,
        row.pending,
        _rate(row.redemption_rate),
        row.points,
    ]


def _csv_rows(report: Report) -> Iterator[list[Any]]:
    for r in report.rows:
        budget = r.budget
        currencies = {c for c, _ in sorted_money(r.cost)} | {c for c, _ in sorted_money(r.revenue)}
        if budget is not None:
            currencies.add(budget.currency)
        ordered = sorted(currencies, key=lambda c: (c is None, c or "")) or [None]
        for index, currency in enumerate(ordered):
            counts = _counts(r) if index == 0 else [""] * 8
            in_budget = budget is not None and budget.currency == currency
            yield [
                r.key,
                r.name,
                *counts,
                currency or "",
                r.cost.get(currency, ""),
                r.revenue.get(currency, ""),
                r.orders if index == 0 else "",
                budget.limit if in_budget and budget else "",
                budget.used if in_budget and budget else "",
            ]
    t = report.totals
    currencies = set(t.cost) | set(t.revenue) | set(t.budget_limit)
    ordered = sorted(currencies, key=lambda c: (c is None, c or "")) or [None]
    for index, currency in enumerate(ordered):
        counts = _counts(t) if index == 0 else [""] * 8
        yield [
            "",
            "TOTAL",
            *counts,
            currency or "",
            t.cost.get(currency, ""),
            t.revenue.get(currency, ""),
            t.orders if index == 0 else "",
            t.budget_limit.get(currency, ""),
            t.budget_used.get(currency, ""),
        ]


def report_csv(report: Report) -> str:
    """The per-policy table as CSV for spreadsheets: UTF-8 with a BOM, one row per policy
    and currency (counts on a policy's first row only, so columns add up), then totals."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in _csv_rows(report):
        writer.writerow([csv_safe(cell) for cell in line])
    return out.getvalue()
