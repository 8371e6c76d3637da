"""The incentives report on a real database: figures per policy and period, budgets, revenue,
apology effectiveness, the chart, the CSV export and who may see it."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update

from automation.incentives import report
from automation.incentives.models import Voucher, VoucherRedemption
from automation.incentives.operations import (
    create_policy,
    grant_incentive,
    mark_voucher_sent,
    redeem_voucher,
    reverse_redemption,
    void_voucher,
)
from automation.incentives.policy import BudgetPeriod, Facts, RewardKind
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Order, OrderStatus

ADMIN_ACTOR = Actor.system("test")
RULE = Actor.automation(7, "report test rule")
MARCH = report.Period(date(2025, 3, 1), date(2025, 3, 31))
NOW = datetime(2025, 8, 1, tzinfo=UTC)
EUR, USD = "EUR", "USD"


def at(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2025, month, day, hour, tzinfo=UTC)


def policy(key: str, kind: RewardKind, value: str, **terms):
    made = create_policy(
        actor=ADMIN_ACTOR,
        key=key,
        name=terms.pop("name", key),
        kind=kind,
        value=Decimal(value),
        **terms,
    )
    db.session.commit()
    return made


def grant(policy_, contact, when: datetime):
    result = grant_incentive(
        policy_,
        contact=contact,
        actor=RULE,
        reason="test",
        key=f"{policy_.key}:{contact.id}:{when.isoformat()}",
        facts=Facts(at=when, contact_id=contact.id),
    )
    db.session.commit()
    assert result.status in ("granted", "pending_approval"), result.status
    return result


def redeem(voucher, contact, when: datetime, *, total: str, currency: str, order_ref=None):
    redeemed = redeem_voucher(
        voucher.code,
        contact=contact,
        order_total=Decimal(total),
        currency=currency,
        order_ref=order_ref,
        actor=Actor.system("shop"),
    )
    # The shop reported it back then: move the redemption into the scenario's past.
    db.session.execute(
        update(VoucherRedemption)
        .where(VoucherRedemption.id == redeemed.redemption.id)
        .values(redeemed_at=when)
    )
    db.session.execute(update(Voucher).where(Voucher.id == voucher.id).values(redeemed_at=when))
    db.session.commit()
    return redeemed.redemption


def order(contact, ref: str, total: str, currency: str, placed: datetime, **kw) -> Order:
    row = Order(
        external_id=ref,
        contact_id=contact.id,
        total=Decimal(total),
        currency=currency,
        placed_at=placed,
        status=kw.pop("status", OrderStatus.PAID),
        **kw,
    )
    db.session.add(row)
    db.session.commit()
    return row


def set_voucher(voucher, **values) -> None:
    db.session.execute(update(Voucher).where(Voucher.id == voucher.id).values(**values))
    db.session.commit()


@pytest.fixture
def scenario(app, make_contact):
    """March 2025 with grants, redemptions, expiry and a void in and around it; EUR and USD."""
    c = [make_contact(name=f"Customer {i}") for i in range(6)]
    apology = policy(
        "apology-discount",
        RewardKind.PERCENTAGE,
        "10",
        name="Apology discount",
        cost_estimate=Decimal("6"),
        budget_amount=Decimal("100"),
        budget_period=BudgetPeriod.MONTH,
    )
    feedback = policy(
        "feedback",
        RewardKind.FIXED,
        "5",
        name="Feedback voucher",
        currency=EUR,
        budget_amount=Decimal("50"),
        budget_period=BudgetPeriod.MONTH,
    )
    credit = policy(
        "us-credit", RewardKind.STORE_CREDIT, "20", name="US credit", currency=USD, valid_days=10
    )
    points = policy("bonus-points", RewardKind.LOYALTY_POINTS, "50", name="Bonus points")
    big = policy(
        "big-reward",
        RewardKind.FIXED,
        "100",
        name="Big reward",
        currency=EUR,
        approval_threshold=Decimal("50"),
    )

    a1 = grant(apology, c[1], at(3, 5)).voucher
    a2 = grant(apology, c[2], at(3, 6)).voucher
    a3 = grant(apology, c[3], at(2, 20)).voucher  # issued in February
    order(c[1], "ORD-1", "80.00", EUR, at(3, 10))
    redeem(a1, c[1], at(3, 10), total="80.00", currency=EUR, order_ref="ORD-1")
    # No order record for ORD-2: the redemption's own total counts.
    redeem(a3, c[3], at(3, 12), total="50.00", currency=USD, order_ref="ORD-2")
    undone = redeem(a2, c[2], at(3, 20), total="70.00", currency=EUR, order_ref="ORD-9")
    reverse_redemption(undone, actor=Actor.system("shop"), reason="refund")
    db.session.commit()

    b1 = grant(feedback, c[1], at(3, 7)).voucher
    b2 = grant(feedback, c[2], at(3, 8)).voucher
    grant(feedback, c[3], at(4, 2))  # April
    order(c[1], "ORD-3", "40.00", EUR, at(3, 14), refunded_total=Decimal("10.00"))
    redeem(b1, c[1], at(3, 14), total="40.00", currency=EUR, order_ref="ORD-3")
    void_voucher(b2, actor=ADMIN_ACTOR, reason="typo")
    set_voucher(b2, voided_at=at(3, 9))

    c1 = grant(credit, c[4], at(3, 1)).voucher  # valid 10 days: lapses on 11 March
    mark_voucher_sent(c1, actor=ADMIN_ACTOR)
    set_voucher(c1, sent_at=at(3, 2))
    grant(credit, c[5], at(2, 1))  # lapsed in February

    grant(points, c[1], at(3, 3))
    grant(big, c[2], at(3, 15))  # waits for approval
    db.session.commit()
    return c


def rows_by_key(result):
    return {row.key: row for row in result.rows}


def test_counts_per_policy_cover_only_what_happened_in_the_period(scenario):
    result = report.incentive_report(MARCH, now=NOW)
    rows = rows_by_key(result)
    apology, feedback, credit = rows["apology-discount"], rows["feedback"], rows["us-credit"]
    assert (apology.issued, apology.redeemed, apology.expired, apology.void) == (2, 2, 0, 0)
    assert (feedback.issued, feedback.redeemed, feedback.void) == (2, 1, 1)
    assert (credit.issued, credit.sent, credit.expired, credit.redeemed) == (1, 1, 1, 0)
    assert rows["bonus-points"].issued == 1 and rows["bonus-points"].points == 50
    assert rows["big-reward"].pending == 1 and rows["big-reward"].issued == 0
    assert result.pending_approvals == 1


def test_redemption_rate_is_the_share_of_codes_issued_in_the_period_used_since(scenario):
    rows = rows_by_key(report.incentive_report(MARCH, now=NOW))
    # a1 used; a2's use was reversed by a refund; a3 was issued in February.
    assert rows["apology-discount"].redemption_rate == 0.5
    assert rows["us-credit"].redemption_rate == 0.0
    assert rows["bonus-points"].redemption_rate is None


def test_cost_is_the_actual_discount_per_currency(scenario):
    rows = rows_by_key(report.incentive_report(MARCH, now=NOW))
    assert rows["apology-discount"].cost == {EUR: Decimal("8.00"), USD: Decimal("5.00")}
    assert rows["feedback"].cost == {EUR: Decimal("5.00")}
    assert rows["us-credit"].cost == {}


def test_revenue_uses_the_shop_order_less_refunds_else_the_redemption_total(scenario):
    rows = rows_by_key(report.incentive_report(MARCH, now=NOW))
    assert rows["apology-discount"].revenue == {EUR: Decimal("80.00"), USD: Decimal("50.00")}
    assert rows["feedback"].revenue == {EUR: Decimal("30.00")}
    assert rows["apology-discount"].orders == 2


def test_budget_used_comes_from_the_postings_of_the_periods_budget_accounts(scenario):
    rows = rows_by_key(report.incentive_report(MARCH, now=NOW))
    apology, feedback = rows["apology-discount"].budget, rows["feedback"].budget
    assert (apology.limit, apology.used, apology.currency) == (
        Decimal("100.00"),
        Decimal("12.00"),
        None,
    )
    assert (feedback.limit, feedback.used, feedback.currency) == (
        Decimal("50.00"),
        Decimal("10.00"),
        EUR,
    )
    assert rows["us-credit"].budget is None


def test_a_quarter_counts_the_limit_of_each_month_even_without_spending(scenario):
    quarter = report.Period(date(2025, 1, 1), date(2025, 3, 31))
    feedback = rows_by_key(report.incentive_report(quarter, now=NOW))["feedback"].budget
    assert (feedback.periods, feedback.limit, feedback.used) == (
        3,
        Decimal("150.00"),
        Decimal("10.00"),
    )


def test_totals_add_counts_and_keep_currencies_apart(scenario):
    totals = report.incentive_report(MARCH, now=NOW).totals
    assert (totals.issued, totals.redeemed, totals.expired, totals.void, totals.pending) == (
        6,
        3,
        1,
        1,
        1,
    )
    assert totals.redemption_rate == pytest.approx(2 / 5)
    assert totals.cost == {EUR: Decimal("13.00"), USD: Decimal("5.00")}
    assert totals.revenue == {EUR: Decimal("110.00"), USD: Decimal("50.00")}
    assert totals.budget_limit == {None: Decimal("100.00"), EUR: Decimal("50.00")}
    assert totals.budget_used == {None: Decimal("12.00"), EUR: Decimal("10.00")}


def test_an_order_that_used_codes_of_two_policies_counts_once_in_the_total(app, make_contact):
    contact = make_contact()
    first = policy("first", RewardKind.FIXED, "5", currency=EUR, is_holder_only=False)
    second = policy("second", RewardKind.FIXED, "7", currency=EUR, is_holder_only=False)
    order(contact, "ORD-BOTH", "100.00", EUR, at(3, 10))
    for made in (first, second):
        voucher = grant(made, contact, at(3, 2)).voucher
        redeem(voucher, contact, at(3, 10), total="100.00", currency=EUR, order_ref="ORD-BOTH")
    result = report.incentive_report(MARCH, now=NOW)
    rows = rows_by_key(result)
    assert rows["first"].revenue == rows["second"].revenue == {EUR: Decimal("100.00")}
    assert result.totals.revenue == {EUR: Decimal("100.00")}
    assert result.totals.orders == 1


def test_redemptions_without_an_order_number_each_count_their_own_total(app, make_contact):
    contact = make_contact()
    shared = policy("walk-in", RewardKind.FIXED, "5", currency=EUR, is_holder_only=False)
    for day, total in ((2, "20.00"), (3, "30.00")):
        voucher = grant(shared, contact, at(3, day)).voucher
        redeem(voucher, contact, at(3, 10), total=total, currency=EUR)
    row = rows_by_key(report.incentive_report(MARCH, now=NOW))["walk-in"]
    assert (row.orders, row.revenue) == (2, {EUR: Decimal("50.00")})


# ---------------------------------------------------------------- apology effectiveness


def closed_ticket(make_ticket, contact, when: datetime):
    ticket = make_ticket(contact=contact)
    ticket.solved_at = when
    ticket.closed_at = when + timedelta(days=3)
    db.session.commit()
    return ticket


@pytest.fixture
def apology_scenario(app, make_contact, make_ticket):
    """Four customers apologised to in March (one orders again in time), five with a closed
    ticket and no voucher (one orders again in time)."""
    apology = policy("apology-late-delivery", RewardKind.FIXED, "10", currency=EUR)
    other = policy("feedback-thanks", RewardKind.FIXED, "5", currency=EUR)
    given = [make_contact(name=f"Apologised {i}") for i in range(4)]
    for contact in given:
        closed_ticket(make_ticket, contact, at(3, 4))
        grant(apology, contact, at(3, 5))
    order(given[0], "G-0", "30", EUR, at(3, 5) + timedelta(days=30))  # counts
    order(given[1], "G-1", "30", EUR, at(3, 5) + timedelta(days=95))  # too late
    order(given[2], "G-2", "30", EUR, at(3, 6), status=OrderStatus.CANCELLED)  # not paid
    order(given[3], "G-3", "30", EUR, at(3, 1))  # before the apology
    without = [make_contact(name=f"Closed {i}") for i in range(5)]
    for contact in without:
        closed_ticket(make_ticket, contact, at(3, 10))
    grant(other, without[4], at(3, 11))  # not an apology: still in the group without
    order(without[0], "W-0", "30", EUR, at(3, 10) + timedelta(days=89))  # counts
    order(without[1], "W-1", "30", EUR, at(3, 10) - timedelta(days=1))  # before
    elsewhere = make_contact(name="February")
    closed_ticket(make_ticket, elsewhere, at(2, 10))  # outside the period
    order(elsewhere, "F-0", "30", EUR, at(2, 20))
    return given, without


def test_apology_comparison_counts_orders_within_ninety_days(apology_scenario):
    result = report.apology_effectiveness(MARCH, now=NOW)
    assert (result.with_voucher.contacts, result.with_voucher.ordered_again) == (4, 1)
    assert (result.without_voucher.contacts, result.without_voucher.ordered_again) == (5, 1)
    assert result.with_voucher.share == 0.25 and result.without_voucher.share == 0.2
    assert result.difference == pytest.approx(0.05)
    assert result.is_too_small
    assert not result.is_still_open


def test_apology_comparison_says_when_the_window_is_not_over(apology_scenario):
    assert report.apology_effectiveness(MARCH, now=at(5, 1)).is_still_open


def test_apology_policies_are_configurable(apology_scenario):
    result = report.apology_effectiveness(MARCH, keys={"feedback-thanks"}, prefixes=(), now=NOW)
    assert result.with_voucher.contacts == 1
    # The four apologised customers now count among those who got none.
    assert result.without_voucher.contacts == 8


def test_enough_customers_in_both_groups_is_not_too_small(apology_scenario, monkeypatch):
    monkeypatch.setattr(report, "MIN_SAMPLE", 4)
    assert not report.apology_effectiveness(MARCH, now=NOW).is_too_small


# ---------------------------------------------------------------- periods and chart


def test_presets_name_whole_months_and_quarters():
    today = date(2025, 5, 20)
    assert report.preset_period("this_month", today) == report.Period(
        date(2025, 5, 1), date(2025, 5, 31), "this_month"
    )
    assert report.preset_period("last_month", date(2025, 1, 9)) == report.Period(
        date(2024, 12, 1), date(2024, 12, 31), "last_month"
    )
    assert report.preset_period("this_quarter", today) == report.Period(
        date(2025, 4, 1), date(2025, 6, 30), "this_quarter"
    )


def test_a_custom_period_with_the_dates_reversed_falls_back_to_this_month():
    period, errors = report.parse_period(
        {"from": "2025-03-31", "to": "2025-03-01"}, date(2025, 5, 2)
    )
    assert errors == ["order"] and period.preset == "this_month"
    period, errors = report.parse_period({"from": "2025-03-01", "to": "2025-03-31"})
    assert errors == [] and period == MARCH


def test_chart_bars_grow_from_the_start_edge_and_mirror_for_right_to_left():
    rows = [
        report.PolicyRow("a", "Apology", RewardKind.FIXED, True, issued=10, redeemed=4),
        report.PolicyRow("b", "Quiet", RewardKind.FIXED, True),
    ]
    ltr = report.bar_chart(rows, width=700, label_width=200)
    rtl = report.bar_chart(rows, rtl=True, width=700, label_width=200)
    assert [r.name for r in ltr.rows] == ["Apology"]  # nothing to draw for "Quiet"
    issued, redeemed = ltr.rows[0].bars
    assert issued.x == 200 and redeemed.width == pytest.approx(issued.width * 0.4, abs=0.1)
    mirrored = rtl.rows[0].bars[0]
    assert mirrored.x + mirrored.width == 500 and mirrored.width == issued.width
    assert ltr.rows[0].label_anchor == "end" and rtl.rows[0].label_x > 500


# ---------------------------------------------------------------- pages


@pytest.fixture
def admin(make_user, login):
    user = make_user("admin", name="Ada Admin")
    login(user)
    return user


def test_agents_may_not_see_the_report_or_its_export(client, make_user, login):
    login(make_user("agent"))
    assert client.get("/admin/incentives/report").status_code == 403
    assert client.get("/admin/incentives/report.csv").status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(client, app):
    response = client.get("/admin/incentives/report")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_report_page_shows_the_table_chart_and_apology_comparison(client, admin, scenario):
    response = client.get("/admin/incentives/report?period=custom&from=2025-03-01&to=2025-03-31")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<svg role="img" aria-labelledby="chart-title chart-desc"' in html
    assert html.count('class="inc-bar-issued"') == 4  # apology, feedback, credit, points
    assert "Apology discount" in html and "Feedback voucher" in html
    assert "€13.00" in html and "$5.00" in html  # cost totals, one per currency
    assert "/incentives/approvals" in html and "1 waits for approval" in html
    assert "Too few customers to tell" in html
    assert "report.csv?from=2025-03-01&amp;to=2025-03-31" in html
    assert "actual discount" in html  # the page says how cost is counted


def test_report_page_in_arabic_mirrors_the_chart(client, admin, scenario):
    html = client.get("/admin/incentives/report?lang=ar&from=2025-03-01&to=2025-03-31").get_data(
        as_text=True
    )
    assert 'dir="rtl"' in html
    assert 'text-anchor="start"' in html.split("<svg", 1)[1].split("</svg>", 1)[0]


def test_a_bad_custom_period_is_explained_next_to_the_dates(client, admin):
    response = client.get("/admin/incentives/report?period=custom&from=2025-03-31&to=2025-03-01")
    assert response.status_code == 200
    assert "The end date is before the start date." in response.get_data(as_text=True)
    assert client.get("/admin/incentives/report.csv?from=nope&to=2025-03-01").status_code == 400


def read_csv(response):
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_csv_export_has_one_row_per_policy_and_currency_then_totals(client, admin, scenario):
    response = client.get("/admin/incentives/report.csv?from=2025-03-01&to=2025-03-31")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "incentives-2025-03-01-2025-03-31.csv" in response.headers["Content-Disposition"]
    lines = read_csv(response)
    header = lines[0]
    assert header[:3] == ["policy_key", "policy_name", "issued"]
    rows = [dict(zip(header, line, strict=True)) for line in lines[1:]]
    apology = [r for r in rows if r["policy_key"] == "apology-discount"]
    assert [(r["currency"], r["cost"], r["revenue"]) for r in apology] == [
        ("EUR", "8.00", "80.00"),
        ("USD", "5.00", "50.00"),
        ("", "", ""),
    ]
    assert (apology[0]["issued"], apology[0]["redeemed"], apology[1]["issued"]) == ("2", "2", "")
    assert (apology[2]["budget_limit"], apology[2]["budget_used"]) == ("100.00", "12.00")
    assert apology[0]["redemption_rate"] == "0.5000"
    totals = [r for r in rows if r["policy_name"] == "TOTAL"]
    assert totals[0]["issued"] == "6"
    assert {r["currency"]: r["cost"] for r in totals} == {"EUR": "13.00", "USD": "5.00", "": ""}
    # Counts appear once per policy, so a spreadsheet's column sum equals the total row.
    assert sum(int(r["issued"] or 0) for r in rows if r["policy_name"] != "TOTAL") == 6


def test_csv_export_neutralises_formulas_in_policy_names(client, admin):
    for key, name in [
        ("eq", '=HYPERLINK("http://evil","x")'),
        ("plus", "+1+2"),
        ("minus", "-2+3"),
        ("at", "@SUM(A1)"),
        ("plain", "Thanks, = fine"),
    ]:
        policy(key, RewardKind.FREE_SHIPPING, "0", name=name)
    lines = read_csv(client.get("/admin/incentives/report.csv?from=2025-03-01&to=2025-03-31"))
    names = {line[0]: line[1] for line in lines[1:] if line[0]}
    assert names == {
        "eq": '\'=HYPERLINK("http://evil","x")',
        "plus": "'+1+2",
        "minus": "'-2+3",
        "at": "'@SUM(A1)",
        "plain": "Thanks, = fine",
    }
