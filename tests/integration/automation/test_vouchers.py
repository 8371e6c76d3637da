"""Vouchers: refusal reasons, expiry, atomic redemption, reversal, bulk codes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from automation.incentives import codes
from automation.incentives.models import (
    RedemptionReversal,
    Voucher,
    VoucherRedemption,
    VoucherStatus,
)
from automation.incentives.operations import (
    VoucherRefused,
    check_voucher,
    create_policy,
    expire_vouchers,
    generate_vouchers,
    grant_incentive,
    mark_voucher_sent,
    redeem_voucher,
    reverse_redemption,
    void_voucher,
)
from automation.incentives.policy import RewardKind
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import AuditEvent, utcnow

RULE = Actor.automation(1, "rule")
SHOP = Actor("api", 1, "shop")


def voucher_for(contact, **policy_kw):
    key = policy_kw.pop("key", "v")
    create_policy(
        actor=Actor.system("t"),
        key=key,
        name="Voucher",
        kind=policy_kw.pop("kind", RewardKind.FIXED),
        value=policy_kw.pop("value", Decimal("10")),
        currency=policy_kw.pop("currency", "EUR"),
        **policy_kw,
    )
    result = grant_incentive(key, contact=contact, actor=RULE, reason="test")
    db.session.commit()
    return result.voucher


def flyer_policy():
    """A 5 % policy, the kind whose codes are generated in bulk for print."""
    create_policy(
        actor=Actor.system("t"),
        key="flyer",
        name="Flyer",
        kind=RewardKind.PERCENTAGE,
        value=Decimal("5"),
    )


def reason_of(code, **kw):
    with pytest.raises(VoucherRefused) as refused:
        check_voucher(code, **kw)
    return refused.value.reason


def test_redeem_with_a_typed_code(app, make_contact):
    contact = make_contact()
    voucher = voucher_for(contact, minimum_order=Decimal("20"))
    typed = voucher.display_code.lower().replace("0", "o").replace("-", " ")
    result = redeem_voucher(
        typed, contact=contact, order_total=Decimal("30"), actor=SHOP, order_ref="#1001"
    )
    db.session.commit()
    assert result.created and result.voucher.status is VoucherStatus.REDEEMED
    assert result.redemption.order_ref == "#1001"
    audit = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "voucher.redeemed")
    ).one()
    assert audit.contact_id == contact.id


def test_every_refusal_has_a_reason(app, make_contact):
    owner, stranger = make_contact(), make_contact(name="Mallory")
    assert reason_of("ABCD-EFGH-JKMN", contact=owner) == "unknown"
    assert reason_of("nonsense", contact=owner) == "unknown"
    voucher = voucher_for(owner, minimum_order=Decimal("50"))
    assert reason_of(voucher.code, contact=stranger) == "not_yours"
    assert reason_of(voucher.code, contact=None) == "not_yours"
    assert reason_of(voucher.code, contact=owner, order_total=Decimal("49.99")) == "below_minimum"
    assert (
        reason_of(voucher.code, contact=owner, order_total=Decimal("60"), currency="USD")
        == "wrong_currency"
    )
    check_voucher(voucher.code, contact=owner, order_total=Decimal("50"))
    redeem_voucher(voucher.code, contact=owner, order_total=Decimal("50"), actor=SHOP)
    assert reason_of(voucher.code, contact=owner, order_total=Decimal("50")) == "already_used"
    void = voucher_for(owner, key="void")
    void_voucher(void, actor=RULE)
    assert reason_of(void.code, contact=owner) == "void"
    pending = voucher_for(owner, key="big", value=Decimal("90"), approval_threshold=Decimal("50"))
    assert pending.status is VoucherStatus.PENDING_APPROVAL
    assert reason_of(pending.code, contact=owner) == "pending_approval"
    expired = voucher_for(owner, key="short", valid_days=1)
    assert reason_of(expired.code, contact=owner, now=utcnow() + timedelta(days=2)) == "expired"
    assert check_voucher(expired.code, contact=owner).id == expired.id  # still valid today


def test_shareable_codes_work_for_anyone(app, make_contact):
    voucher = voucher_for(make_contact(), is_holder_only=False)
    assert check_voucher(voucher.code, contact=make_contact(name="Friend")).id == voucher.id


def test_expiry_job_marks_vouchers_expired(app, make_contact):
    contact = make_contact()
    voucher = voucher_for(contact, valid_days=1)
    sent = voucher_for(contact, key="other", valid_days=30)
    mark_voucher_sent(sent, actor=RULE)
    assert expire_vouchers(now=utcnow() + timedelta(days=2)) == 1
    db.session.commit()
    assert voucher.status is VoucherStatus.EXPIRED
    assert sent.status is VoucherStatus.SENT
    assert reason_of(voucher.code, contact=contact) == "expired"


def test_reversal_makes_the_voucher_usable_again(app, make_contact):
    contact = make_contact()
    voucher = voucher_for(contact)
    mark_voucher_sent(voucher, actor=RULE)
    result = redeem_voucher(
        voucher.code, contact=contact, order_total=Decimal("30"), actor=SHOP, order_ref="A"
    )
    reversal = reverse_redemption(result.redemption, actor=SHOP, reason="refund")
    again = reverse_redemption(result.redemption, actor=SHOP)
    db.session.commit()
    assert reversal.id == again.id and reversal.outcome == "restored"
    assert voucher.status is VoucherStatus.SENT and voucher.redeemed_at is None
    second = redeem_voucher(
        voucher.code, contact=contact, order_total=Decimal("30"), actor=SHOP, order_ref="B"
    )
    db.session.commit()
    assert second.created
    assert db.session.scalar(select(func.count()).select_from(VoucherRedemption)) == 2
    assert db.session.scalar(select(func.count()).select_from(RedemptionReversal)) == 1


def test_reversal_leaves_the_voucher_void_when_the_policy_says_so(app, make_contact):
    contact = make_contact()
    voucher = voucher_for(contact, restores_on_refund=False)
    result = redeem_voucher(voucher.code, contact=contact, order_total=Decimal("30"), actor=SHOP)
    assert reverse_redemption(result.redemption, actor=SHOP).outcome == "void"
    assert voucher.status is VoucherStatus.VOID


def test_the_same_order_redeeming_again_gets_its_redemption_back(app, make_contact):
    contact = make_contact()
    voucher = voucher_for(contact)
    first = redeem_voucher(
        voucher.code, contact=contact, order_total=Decimal("30"), actor=SHOP, order_ref="X1"
    )
    again = redeem_voucher(
        voucher.code, contact=contact, order_total=Decimal("30"), actor=SHOP, order_ref="X1"
    )
    assert not again.created and again.redemption.id == first.redemption.id
    with pytest.raises(VoucherRefused):
        redeem_voucher(
            voucher.code, contact=contact, order_total=Decimal("30"), actor=SHOP, order_ref="X2"
        )


def test_bulk_generation_makes_unique_shareable_codes(app):
    flyer_policy()
    batch = generate_vouchers("flyer", 12_345, actor=Actor.system("t"), chunk=4000)
    db.session.commit()
    rows = db.session.scalars(select(Voucher.code).where(Voucher.batch == batch)).all()
    assert len(rows) == len(set(rows)) == 12_345
    assert all(codes.is_well_formed(code) for code in rows[:500])
    sample = db.session.scalars(select(Voucher).where(Voucher.batch == batch).limit(1)).one()
    assert sample.status is VoucherStatus.ISSUED and not sample.is_holder_only


def test_bulk_generation_makes_up_codes_that_collide_with_existing_ones(app, monkeypatch):
    flyer_policy()
    first = generate_vouchers("flyer", 50, actor=Actor.system("t"))
    db.session.commit()
    taken = db.session.scalars(select(Voucher.code).where(Voucher.batch == first)).all()
    real = codes.generate_codes
    draws: list[int] = []

    def colliding(count: int) -> list[str]:
        # The first draws repeat codes already stored, and one code twice within the draw.
        draws.append(count)
        if len(draws) <= 2:
            return [*taken[:5], taken[0], *real(count - 6)]
        return real(count)

    monkeypatch.setattr(codes, "generate_codes", colliding)
    second = generate_vouchers("flyer", 300, actor=Actor.system("t"), chunk=100)
    db.session.commit()
    rows = db.session.scalars(select(Voucher.code).where(Voucher.batch == second)).all()
    assert len(rows) == len(set(rows)) == 300
    assert not set(rows) & set(taken)
    everything = db.session.scalar(select(func.count()).select_from(Voucher))
    assert everything == db.session.scalar(select(func.count(func.distinct(Voucher.code))))
    assert len(draws) > 3  # the collisions were made up with new draws
