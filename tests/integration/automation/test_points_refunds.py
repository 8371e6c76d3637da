"""Refunds take back order points in proportion: append-only, capped at what was earned,
idempotent on replays, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from automation.loyalty.models import EntryKind, EntryState, PointsEntry
from automation.loyalty.operations import (
    apply_order,
    balance,
    deduct_points,
    ledger_balance,
    mature_pending_points,
    reversed_points,
)
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import AuditEvent, Contact, Order, OrderStatus, utcnow
from helpdesk.operations.orders import find_order, record_order

SHOP = Actor("api", 1, "shop")


def report(contact, *, refunded: str | None = None, status=None, total: str = "95.00"):
    """The shop reports order o-1 (jobs run at once, so points follow on commit)."""
    record_order(
        actor=SHOP,
        external_id="o-1",
        total=Decimal(total),
        currency="EUR",
        contact=contact,
        status=status,
        refunded_total=Decimal(refunded) if refunded is not None else None,
    )
    db.session.commit()
    db.session.expire_all()


def earning():
    return db.session.scalars(select(PointsEntry).where(PointsEntry.key.like("order:%:earn"))).one()


def reversals(entry):
    return db.session.scalars(
        select(PointsEntry).where(PointsEntry.reverses_id == entry.id).order_by(PointsEntry.id)
    ).all()


def points_of(contact):
    contact = db.session.get(Contact, contact.id)
    assert balance(contact) == ledger_balance(contact)
    return balance(contact)


def test_partial_refunds_reverse_their_share_and_a_full_refund_only_the_rest(app, make_contact):
    contact = make_contact()
    report(contact)
    earned = earning()
    assert (earned.points, earned.state, earned.order_amount) == (9, EntryState.PENDING, 95)

    report(contact, refunded="50.00")  # 52.6 % of 9 points: 4 (rounded down)
    first = reversals(earned)
    assert [(r.kind, r.points, r.reverses_id) for r in first] == [
        (EntryKind.REVERSE, -4, earned.id)
    ]
    assert (points_of(contact).pending, points_of(contact).available) == (5, 0)

    report(contact, refunded="80.00")  # 84.2 % of 9: 7 in all, so 3 more
    assert [r.points for r in reversals(earned)] == [-4, -3]

    report(contact, refunded="95.00")  # the full refund takes back only the remaining 2
    assert find_order("o-1").status is OrderStatus.REFUNDED
    assert [r.points for r in reversals(earned)] == [-4, -3, -2]
    assert reversed_points(earned) == earned.points
    points = points_of(contact)
    assert (points.available, points.pending) == (0, 0)
    audited = db.session.scalars(
        select(AuditEvent.data).where(AuditEvent.action == "points.reversed")
    ).all()
    assert [(d["points"], d["reverses"]) for d in audited] == [
        (-4, earned.id),
        (-3, earned.id),
        (-2, earned.id),
    ]


def test_replaying_the_same_refund_reverses_nothing_more(app, make_contact):
    contact = make_contact()
    report(contact)
    report(contact, refunded="50.00")
    order = find_order("o-1")
    first = apply_order(order, actor=SHOP)
    again = apply_order(order, actor=SHOP)
    db.session.commit()
    earned = earning()
    assert first.id == again.id == reversals(earned)[0].id
    assert [r.points for r in reversals(earned)] == [-4]
    # A full refund replayed after the partial one is just as harmless.
    report(contact, status=OrderStatus.REFUNDED)
    apply_order(find_order("o-1"), actor=SHOP)
    db.session.commit()
    assert [r.points for r in reversals(earned)] == [-4, -5]
    assert points_of(contact).pending == 0


def test_a_smaller_refund_after_a_larger_one_gives_nothing_back(app, make_contact):
    contact = make_contact()
    report(contact)
    report(contact, refunded="80.00")
    report(contact, refunded="20.00")  # the shop corrected itself; the ledger only appends
    assert [r.points for r in reversals(earning())] == [-7]


def test_the_share_comes_from_the_original_earning_not_todays_rule(app, make_contact):
    contact = make_contact()
    report(contact)
    app.config["RAPPORT_POINTS_SPEND_UNIT"] = "1"  # today the same order would earn 95
    report(contact, refunded="50.00")
    assert [r.points for r in reversals(earning())] == [-4]


def test_a_partly_reversed_pending_lot_matures_net_of_its_reversals(app, make_contact):
    contact = make_contact()
    report(contact)
    report(contact, refunded="50.00")
    earned = earning()
    assert reversals(earned)[0].state is EntryState.PENDING
    assert mature_pending_points(now=utcnow() + timedelta(days=15)) == 1
    db.session.commit()
    db.session.expire_all()
    assert earning().state is EntryState.POSTED
    assert [r.state for r in reversals(earned)] == [EntryState.POSTED]
    points = points_of(contact)
    assert (points.available, points.pending) == (5, 0)
    matured = db.session.scalars(
        select(AuditEvent.data).where(AuditEvent.action == "points.matured")
    ).one()
    assert matured["points"] == 5


def test_refunds_after_maturing_take_points_from_the_balance(app, make_contact):
    contact = make_contact()
    report(contact)
    mature_pending_points(now=utcnow() + timedelta(days=15))
    db.session.commit()
    deduct_points(db.session.get(Contact, contact.id), 3, actor=SHOP, reason="spent", key="s")
    db.session.commit()
    report(contact, refunded="50.00")
    report(contact, refunded="95.00")
    assert [r.points for r in reversals(earning())] == [-4, -5]
    assert earning().remaining == 0
    # Three of the nine were spent before the refunds; the ledger shows the debt.
    assert (points_of(contact).available, points_of(contact).pending) == (-3, 0)


def test_an_order_first_reported_partly_refunded_earns_on_what_was_kept(app, make_contact):
    contact = make_contact()
    report(contact, refunded="45.00")  # 50.00 kept: 5 points, earned on 50.00
    earned = earning()
    assert (earned.points, earned.order_amount) == (5, 50)
    assert reversals(earned) == []
    report(contact, refunded="70.00")  # 20.00 of the 50.00 refunded since: 2 of 5 points
    assert [r.points for r in reversals(earned)] == [-2]
    report(contact, status=OrderStatus.CANCELLED)
    assert [r.points for r in reversals(earned)] == [-2, -3]


def test_concurrent_refunds_never_reverse_more_than_was_earned(app, make_contact, run_threads):
    contact = make_contact()
    report(contact)
    order_id = find_order("o-1").id
    earned_id = earning().id
    refunded = ("50.00", "80.00") * 2

    def refund(i: int) -> None:
        order = db.session.get(Order, order_id)
        # Another refund's job is running at the same time on its own reading.
        db.session.expunge(order)
        order.refunded_total = Decimal(refunded[i])
        apply_order(order, actor=SHOP)

    results, _ = run_threads(len(refunded), refund)
    db.session.expire_all()
    earned = db.session.get(PointsEntry, earned_id)
    assert reversed_points(earned) <= 7
    assert reversed_points(earned) >= 4
    assert len({r.key for r in reversals(earned)}) == len(reversals(earned))
    assert balance(contact) == ledger_balance(contact)
    assert len(results) >= 1
