"""Merging two contacts keeps every reward: points, tier, vouchers and referrals move too."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from automation.incentives.models import Voucher
from automation.incentives.operations import issue_goodwill_voucher
from automation.loyalty.models import PointsEntry
from automation.loyalty.operations import award_points, balance, referral_code_for
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import AuditEvent
from helpdesk.operations.contacts import merge_contacts

ACTOR = Actor.system("test")


def test_merging_contacts_moves_points_and_adds_the_balances(app, make_contact):
    kept = make_contact(name="Ada", email="ada@example.test")
    duplicate = make_contact(name="Ada L.", email="ada.l@example.test")
    award_points(kept, 100, actor=ACTOR, reason="order", key="k1")
    award_points(duplicate, 40, actor=ACTOR, reason="order", key="k2")
    db.session.commit()

    merge_contacts(duplicate, kept, actor=ACTOR)
    db.session.commit()

    assert balance(kept).available == 140
    assert balance(duplicate).available == 0
    owners = set(db.session.scalars(select(PointsEntry.contact_id)))
    assert owners == {kept.id}


def test_merging_contacts_moves_vouchers_so_holder_only_codes_keep_working(
    app, make_contact, make_user
):
    agent = make_user("agent")
    kept = make_contact(name="Ada", email="ada@example.test")
    duplicate = make_contact(name="Ada L.", email="ada.l@example.test")
    issue_goodwill_voucher(duplicate, actor=Actor.for_user(agent), amount=Decimal("5"))
    db.session.commit()

    merge_contacts(duplicate, kept, actor=ACTOR)
    db.session.commit()

    assert [v.contact_id for v in db.session.scalars(select(Voucher))] == [kept.id]
    history = db.session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "contact.merged", AuditEvent.contact_id == kept.id
        )
    ).one()
    assert history.data["moved"]["vouchers"] == 1


def test_a_referral_code_the_duplicate_shared_now_rewards_the_kept_contact(app, make_contact):
    kept = make_contact(name="Ada", email="ada@example.test")
    duplicate = make_contact(name="Ada L.", email="ada.l@example.test")
    code = referral_code_for(duplicate, actor=ACTOR)
    db.session.commit()

    merge_contacts(duplicate, kept, actor=ACTOR)
    db.session.commit()

    assert referral_code_for(kept, actor=ACTOR).code == code.code
