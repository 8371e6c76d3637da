"""Every grant, voucher, points, tier and referral entry on the contact timeline reads as a
translated sentence, never as the raw audit action."""

from __future__ import annotations

from decimal import Decimal

import pytest
from flask_babel import force_locale

from automation.incentives.operations import (
    create_policy,
    grant_incentive,
    mark_voucher_sent,
    redeem_voucher,
    reverse_redemption,
)
from automation.incentives.policy import RewardKind
from automation.loyalty.operations import (
    award_points,
    deduct_points,
    record_referral,
    referral_code_for,
    reverse_entry,
)
from helpdesk.actors import Actor
from helpdesk.crm.timeline import contact_timeline, describe_event
from helpdesk.extensions import db
from helpdesk.models import AuditEvent
from helpdesk.operations.orders import record_order

RULE = Actor.automation(1, "rule")
SHOP = Actor("api", 1, "shop")
OURS = ("incentive.", "voucher.", "points.", "loyalty.", "referral.")


@pytest.fixture
def busy_contact(app, make_ticket, make_contact):
    """A contact with a voucher used and refunded, points earned, spent, reversed, a tier
    change, an order's pending points and a blocked referral."""
    ticket = make_ticket()
    contact = ticket.contact
    create_policy(
        actor=RULE,
        key="apology",
        name="Apology",
        kind=RewardKind.FIXED,
        value=Decimal("10"),
        currency="EUR",
    )
    grant = grant_incentive("apology", contact=contact, ticket=ticket, actor=RULE, reason="sorry")
    voucher = grant.voucher
    mark_voucher_sent(voucher, actor=RULE)
    redeemed = redeem_voucher(
        voucher.code, contact=contact, order_total=Decimal("50"), actor=SHOP, order_ref="A-1"
    )
    reverse_redemption(redeemed.redemption, actor=SHOP, reason="refund")
    earned = award_points(contact, 600, actor=RULE, reason="thanks", key="k", ticket=ticket)
    deduct_points(contact, 1, actor=RULE, reason="spend", key="s")
    reverse_entry(earned, actor=RULE, reason="oops")
    record_order(
        actor=SHOP, external_id="o-1", total=Decimal("95"), currency="EUR", contact=contact
    )
    record_referral(referral_code_for(contact, actor=RULE).code, contact, actor=RULE)
    db.session.commit()
    return contact


def test_every_reward_entry_reads_as_a_sentence(app, busy_contact):
    with app.test_request_context():
        entries = contact_timeline(busy_contact).entries
    ours = [e for e in entries if e.kind == "event" and e.variant.startswith(OURS)]
    actions = {e.variant for e in ours}
    assert {
        "incentive.issued",
        "voucher.sent",
        "voucher.redeemed",
        "voucher.redemption_reversed",
        "points.earned",
        "points.spent",
        "points.reversed",
        "points.pending",
        "loyalty.tier_changed",
        "referral.code_created",
        "referral.blocked",
    } <= actions
    for entry in ours:
        assert entry.variant not in entry.title
        assert not any(prefix in entry.title for prefix in OURS), entry.title
    titles = {e.variant: e.title for e in ours}
    assert titles["points.earned"] == "Earned 600 points"
    assert titles["points.spent"] == "Spent 1 point"
    assert titles["points.reversed"] == "600 points taken back"
    assert titles["points.pending"] == "Earned 9 points, spendable after the return window"
    assert titles["incentive.issued"] == "Reward granted: €10.00"
    assert titles["loyalty.tier_changed"] == "Loyalty tier is now Silver"
    assert titles["referral.blocked"] == "Referral blocked: they referred themselves"


@pytest.mark.parametrize("lang", ["el", "hu", "ar"])
def test_reward_entries_are_translated(app, busy_contact, lang):
    events = db.session.scalars(
        db.select(AuditEvent).where(AuditEvent.contact_id == busy_contact.id)
    ).all()
    ours = [e for e in events if e.action.startswith(OURS)]
    with app.test_request_context(), force_locale(lang):
        for event in ours:
            with force_locale("en"):
                english = describe_event(event)
            translated = describe_event(event)
            assert translated != english, (event.action, translated)
            assert event.action not in translated


def test_arabic_uses_the_plural_form_of_the_count(app, make_contact):
    contact = make_contact()
    for points in (1, 2, 5, 11, 100):
        award_points(contact, points, actor=RULE, reason="x", key=f"k{points}")
    db.session.commit()
    events = db.session.scalars(
        db.select(AuditEvent).where(AuditEvent.action == "points.earned").order_by(AuditEvent.id)
    ).all()
    with app.test_request_context(), force_locale("ar"):
        titles = [describe_event(e) for e in events]
    assert titles == [
        "ربح 1 نقطة",
        "ربح 2 نقطتين",
        "ربح 5 نقاط",
        "ربح 11 نقطة",
        "ربح 100 نقطة",
    ]
