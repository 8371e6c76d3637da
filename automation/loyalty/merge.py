"""When two contacts merge, points, tier and referrals go to the one kept."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from automation.incentives.sql import changed_rows
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Contact
from helpdesk.operations.contacts import on_merge

from .models import ContactTier, PointsBalance, PointsEntry, Referral, ReferralCode
from .operations import _lock_balance, _move_balance, evaluate_tier


@on_merge
def move_loyalty(source: Contact, target: Contact, actor: Actor) -> dict[str, int]:
    """Move ledger entries and add the source's balance to the target's, in one transaction."""
    _lock_balance(source.id)
    _lock_balance(target.id)
    row = db.session.get(PointsBalance, source.id, populate_existing=True)
    available, pending = (row.available, row.pending) if row else (0, 0)
    # The ledger stays append-only in substance: entries keep their amounts and
    # history; only whose they are changes, as with tickets and orders.
    moved = changed_rows(
        update(PointsEntry).where(PointsEntry.contact_id == source.id).values(contact_id=target.id)
    )
    _move_balance(target.id, available=available, pending=pending)
    _move_balance(source.id, available=-available, pending=-pending)
    db.session.execute(
        update(Referral)
        .where(Referral.referrer_id == source.id)
        .values(referrer_id=target.id)
        .execution_options(synchronize_session=False)
    )
    target_referred = db.session.scalar(select(Referral.id).where(Referral.referee_id == target.id))
    if target_referred is None:
        db.session.execute(
            update(Referral)
            .where(Referral.referee_id == source.id)
            .values(referee_id=target.id)
            .execution_options(synchronize_session=False)
        )
    # Codes the source already shared keep working, now for the target.
    if (
        db.session.scalar(select(ReferralCode.id).where(ReferralCode.contact_id == target.id))
        is None
    ):
        db.session.execute(
            update(ReferralCode)
            .where(ReferralCode.contact_id == source.id)
            .values(contact_id=target.id)
            .execution_options(synchronize_session=False)
        )
    db.session.execute(delete(ContactTier).where(ContactTier.contact_id == source.id))
    db.session.flush()
    db.session.expire_all()
    evaluate_tier(target)
    return {"points_entries": moved, "points": available + pending}
