"""The points ledger on a real database: reversals, pending points, expiry, tiers, referrals."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from automation.loyalty.models import (
    ContactTier,
    EntryKind,
    EntryState,
    LoyaltyTier,
    PointsEntry,
    ReferralStatus,
)
from automation.loyalty.operations import (
    LoyaltyError,
    award_points,
    balance,
    deduct_points,
    evaluate_tier,
    expire_points,
    ledger_balance,
    mature_pending_points,
    record_referral,
    referral_code_for,
    reverse_entry,
)
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import AuditEvent, Contact, OrderStatus, utcnow
from helpdesk.operations.orders import record_order

ACT = Actor.system("test")
SHOP = Actor("api", 1, "shop")


def consistent(contact):
    assert balance(contact) == ledger_balance(contact)
    return balance(contact)


def test_award_is_idempotent_and_audited(app, make_contact, make_ticket):
    contact = make_contact()
    ticket = make_ticket(contact=contact)
    first = award_points(contact, 100, actor=ACT, reason="thanks", key="k1", ticket=ticket)
    again = award_points(contact, 100, actor=ACT, reason="thanks", key="k1", ticket=ticket)
    db.session.commit()
    assert first.id == again.id
    assert consistent(contact).available == 100
    earned = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "points.earned")
    ).one()
    assert (earned.contact_id, earned.ticket_id, earned.data["points"]) == (
        contact.id,
        ticket.id,
        100,
    )


def test_spending_cannot_overdraw(app, make_contact):
    contact = make_contact()
    award_points(contact, 50, actor=ACT, reason="x", key="k")
    with pytest.raises(LoyaltyError) as refused:
        deduct_points(contact, 60, actor=ACT, reason="y", key="s1")
    assert refused.value.code == "insufficient_points"
    deduct_points(contact, 50, actor=ACT, reason="y", key="s2")
    assert consistent(contact).available == 0


def test_concurrent_spends_never_overdraw(app, make_contact, run_threads):
    contact = make_contact()
    award_points(contact, 100, actor=ACT, reason="x", key="k")
    contact_id = contact.id

    def spend(i: int) -> None:
        deduct_points(db.session.get(Contact, contact_id), 30, actor=ACT, reason="r", key=f"s{i}")

    results, errors = run_threads(6, spend)
    assert len(results) == 3
    assert [type(e) for e in errors] == [LoyaltyError] * 3, errors
    db.session.expire_all()
    assert consistent(contact).available == 10


def test_reversal_copies_the_original_amount(app, make_contact):
    contact = make_contact()
    earned = award_points(contact, 120, actor=ACT, reason="order", key="k")
    deduct_points(contact, 100, actor=ACT, reason="spent", key="s")
    reversal = reverse_entry(earned, actor=ACT, reason="refund")
    assert reverse_entry(earned, actor=ACT, reason="again").id == reversal.id
    db.session.commit()
    assert (reversal.kind, reversal.points, reversal.reverses_id) == (
        EntryKind.REVERSE,
        -120,
        earned.id,
    )
    # The customer spent most of it; the ledger says so rather than inventing a smaller reversal.
    assert consistent(contact).available == -100


def test_pending_points_mature_after_the_return_window(app, make_contact):
    contact = make_contact()
    entry = award_points(contact, 30, actor=ACT, reason="order", key="k", pending_days=14)
    db.session.commit()
    assert consistent(contact).pending == 30
    with pytest.raises(LoyaltyError):
        deduct_points(contact, 10, actor=ACT, reason="x", key="s")
    assert mature_pending_points(now=utcnow() + timedelta(days=13)) == 0
    assert mature_pending_points(now=utcnow() + timedelta(days=15)) == 1
    assert mature_pending_points(now=utcnow() + timedelta(days=16)) == 0
    db.session.commit()
    assert entry.state is EntryState.POSTED
    points = consistent(contact)
    assert (points.available, points.pending) == (30, 0)


def test_reversing_pending_points_removes_them_before_they_mature(app, make_contact):
    contact = make_contact()
    entry = award_points(contact, 30, actor=ACT, reason="order", key="k", pending_days=14)
    reverse_entry(entry, actor=ACT, reason="returned")
    assert mature_pending_points(now=utcnow() + timedelta(days=15)) == 0
    points = consistent(contact)
    assert (points.available, points.pending) == (0, 0)


def test_spending_takes_the_oldest_lot_first_and_expiry_takes_the_rest(app, make_contact):
    contact = make_contact()
    old = award_points(contact, 100, actor=ACT, reason="old", key="old", expires_in_days=30)
    new = award_points(contact, 50, actor=ACT, reason="new", key="new", expires_in_days=365)
    spend = deduct_points(contact, 120, actor=ACT, reason="spend", key="s")
    assert spend.allocations == [[old.id, 100], [new.id, 20]]
    assert expire_points(now=utcnow() + timedelta(days=31)) == 0
    assert expire_points(now=utcnow() + timedelta(days=366)) == 30
    assert expire_points(now=utcnow() + timedelta(days=367)) == 0
    db.session.commit()
    assert consistent(contact).available == 0


def test_unspent_old_lot_expires_while_newer_stays(app, make_contact):
    contact = make_contact()
    award_points(contact, 100, actor=ACT, reason="old", key="old", expires_in_days=30)
    award_points(contact, 50, actor=ACT, reason="new", key="new", expires_in_days=365)
    deduct_points(contact, 40, actor=ACT, reason="spend", key="s")
    assert expire_points(now=utcnow() + timedelta(days=31)) == 60
    assert consistent(contact).available == 50


@pytest.mark.parametrize("app_config", [{"RAPPORT_TIER_GRACE_DAYS": 30}])
def test_tiers_rise_at_once_and_fall_after_grace(app, make_contact):
    contact = make_contact()
    earned = award_points(contact, 600, actor=ACT, reason="x", key="k")
    assert db.session.get(ContactTier, contact.id).tier_key == "silver"
    reverse_entry(earned, actor=ACT, reason="refund")
    row = db.session.get(ContactTier, contact.id)
    assert row.tier_key == "silver" and row.grace_until is not None
    assert evaluate_tier(contact, now=utcnow() + timedelta(days=29)).tier_key == "silver"
    assert evaluate_tier(contact, now=utcnow() + timedelta(days=31)).tier_key == "bronze"
    assert db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "loyalty.tier_changed")
    ).all()


def test_admin_thresholds_decide_the_tier(app, make_contact):
    contact = make_contact()
    evaluate_tier(contact)  # seeds the four tiers
    db.session.scalars(select(LoyaltyTier).where(LoyaltyTier.key == "gold")).one().threshold = 200
    award_points(contact, 250, actor=ACT, reason="x", key="k")
    assert db.session.get(ContactTier, contact.id).tier_key == "gold"


def test_paid_order_earns_pending_points_and_refund_reverses_them(app, make_contact):
    contact = make_contact()
    record_order(
        actor=SHOP, external_id="o-1", total=Decimal("95.00"), currency="EUR", contact=contact
    )
    db.session.commit()
    db.session.expire_all()
    entry = db.session.scalars(select(PointsEntry).where(PointsEntry.key.like("order:%"))).one()
    assert (entry.points, entry.state) == (9, EntryState.PENDING)
    # The earning rule changes before the refund; the reversal still takes back the original 9.
    app.config["RAPPORT_POINTS_SPEND_UNIT"] = "1"
    record_order(
        actor=SHOP,
        external_id="o-1",
        total=Decimal("95.00"),
        currency="EUR",
        status=OrderStatus.REFUNDED,
    )
    db.session.commit()
    db.session.expire_all()
    reversal = db.session.scalars(
        select(PointsEntry).where(PointsEntry.reverses_id == entry.id)
    ).one()
    assert reversal.points == -9
    points = consistent(db.session.get(Contact, contact.id))
    assert (points.available, points.pending) == (0, 0)


def test_referral_rewards_both_after_the_first_paid_order(app, make_contact):
    referrer = make_contact(email="ada@example.test")
    friend = make_contact(name="Friend", email="friend@example.test")
    code = referral_code_for(referrer, actor=ACT, ip="10.0.0.1", user_agent="Firefox")
    referral = record_referral(
        code.code.lower(), friend, actor=ACT, ip="10.0.0.2", user_agent="Safari"
    )
    db.session.commit()
    assert referral.status is ReferralStatus.PENDING
    record_order(actor=SHOP, external_id="f-1", total=Decimal("40"), currency="EUR", contact=friend)
    db.session.commit()
    db.session.expire_all()
    assert referral.status is ReferralStatus.REWARDED
    assert balance(referrer).available == 500 and balance(friend).available == 250
    record_order(actor=SHOP, external_id="f-2", total=Decimal("40"), currency="EUR", contact=friend)
    db.session.commit()
    assert balance(referrer).available == 500


@pytest.mark.parametrize(
    ("referee_email", "ip", "agent", "reason"),
    [
        ("a.d.a+friend@googlemail.com", "10.0.0.9", "Safari", "same_email"),
        ("someone@example.test", "10.0.0.1", "Firefox", "same_device"),
    ],
)
def test_referral_fraud_is_blocked_with_a_reason(
    app, make_contact, referee_email, ip, agent, reason
):
    referrer = make_contact(email="ada@gmail.com")
    referee = make_contact(name="Other", email=referee_email)
    code = referral_code_for(referrer, actor=ACT, ip="10.0.0.1", user_agent="Firefox")
    referral = record_referral(code.code, referee, actor=ACT, ip=ip, user_agent=agent)
    assert (referral.status, referral.block_reason) == (ReferralStatus.BLOCKED, reason)
    assert db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "referral.blocked")
    ).first()


def test_self_referral_and_existing_customers_are_blocked(app, make_contact):
    referrer = make_contact()
    code = referral_code_for(referrer, actor=ACT)
    assert record_referral(code.code, referrer, actor=ACT).block_reason == "self_referral"
    customer = make_contact(name="Old customer")
    record_order(
        actor=SHOP, external_id="old-1", total=Decimal("10"), currency="EUR", contact=customer
    )
    assert record_referral(code.code, customer, actor=ACT).block_reason == "existing_customer"
