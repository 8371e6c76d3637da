"""Loyalty operations: post points to the ledger, mature and expire them, tiers, referrals.

Every posting goes through here. The balance row is a projection changed by
``UPDATE … SET available = available + :n`` in the same transaction as the
entry; anything that takes points from lots first locks that row (the
conditional update does it), so two spends never draw on the same lot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError

from automation.incentives import codes
from automation.incentives.sql import changed_rows, insert_or_ignore
from helpdesk import events
from helpdesk.actors import SYSTEM, Actor
from helpdesk.extensions import db
from helpdesk.models import Contact, Order, OrderStatus, Ticket, utcnow
from helpdesk.operations import audit
from helpdesk.operations.contacts import OperationError

from . import rules
from .events import PointsPosted, ReferralRewarded, TierChanged
from .models import (
    ContactTier,
    EntryKind,
    EntryState,
    LoyaltyTier,
    PointsBalance,
    PointsEntry,
    Referral,
    ReferralCode,
    ReferralStatus,
)

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "RAPPORT_POINTS_SPEND_UNIT": "10",  # one point per 10 spent
    "RAPPORT_POINTS_PENDING_DAYS": 14,  # the return window
    "RAPPORT_POINTS_EXPIRY_DAYS": 365,  # 0: points never expire
    "RAPPORT_TIER_PERIOD_DAYS": 365,
    "RAPPORT_TIER_GRACE_DAYS": 90,
    "RAPPORT_REFERRAL_REFERRER_POINTS": 500,
    "RAPPORT_REFERRAL_REFEREE_POINTS": 250,
}


def setting(name: str) -> Any:
    return current_app.config.get(name, DEFAULTS[name])


class LoyaltyError(OperationError):
    """A points movement that cannot happen; ``code`` is machine-readable."""

    def __init__(self, message: str, *, code: str, status: int = 409) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class Balance:
    available: int
    pending: int


# ------------------------------------------------------------------ posting


def _ensure_balance(contact_id: int) -> None:
    insert_or_ignore(
        PointsBalance.__table__, contact_id=contact_id, available=0, pending=0, updated_at=utcnow()
    )


def _move_balance(contact_id: int, *, available: int = 0, pending: int = 0) -> None:
    db.session.execute(
        update(PointsBalance)
        .where(PointsBalance.contact_id == contact_id)
        .values(
            available=PointsBalance.available + available,
            pending=PointsBalance.pending + pending,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )


def _lock_balance(contact_id: int) -> None:
    """Hold the contact's balance row until commit (PostgreSQL; SQLite has one writer)."""
    _ensure_balance(contact_id)
    db.session.execute(
        select(PointsBalance.contact_id)
        .where(PointsBalance.contact_id == contact_id)
        .with_for_update()
    )


def _by_key(key: str) -> PointsEntry | None:
    return db.session.execute(
        select(PointsEntry).where(PointsEntry.key == key)
    ).scalar_one_or_none()


def _post(entry: PointsEntry) -> PointsEntry:
    """Insert an entry under its key; if the key exists (a retry, a race) return that one."""
    existing = _by_key(entry.key)
    if existing is not None:
        return existing
    try:
        with db.session.begin_nested():
            db.session.add(entry)
            db.session.flush()
    except IntegrityError:
        found = _by_key(entry.key)
        if found is None:
            raise
        return found
    return entry


def _record(
    entry: PointsEntry, action: str, actor: Actor, *, ticket_id: int | None = None, **data: Any
) -> None:
    audit.record(
        action,
        actor=actor,
        contact_id=entry.contact_id,
        ticket_id=ticket_id if ticket_id is not None else entry.ticket_id,
        entry_id=entry.id,
        points=entry.points,
        reason=entry.reason,
        **data,
    )
    events.on_commit(
        PointsPosted(
            actor=actor,
            contact_id=entry.contact_id,
            entry_id=entry.id,
            kind=entry.kind.value,
            points=entry.points,
        )
    )


def award_points(
    contact: Contact,
    points: int,
    *,
    actor: Actor,
    reason: str,
    key: str,
    ticket: Ticket | None = None,
    order: Order | None = None,
    pending_days: int | None = None,
    expires_in_days: int | None = None,
    order_amount: Decimal | None = None,
) -> PointsEntry:
    """Earn ``points`` as a new lot; idempotent on ``key``. Pending through a return window
    when ``pending_days`` (order points) is above zero; ``order_amount`` is what an order's
    points were earned on (a refund takes back its share)."""
    if points <= 0:
        raise LoyaltyError("points to award must be above zero", code="invalid_points", status=422)
    now = utcnow()
    expiry_days = (
        setting("RAPPORT_POINTS_EXPIRY_DAYS") if expires_in_days is None else expires_in_days
    )
    pending = (pending_days or 0) > 0
    entry = PointsEntry(
        contact_id=contact.id,
        kind=EntryKind.EARN,
        state=EntryState.PENDING if pending else EntryState.POSTED,
        points=points,
        remaining=points,
        key=key,
        reason=reason,
        matures_at=now + timedelta(days=pending_days or 0) if pending else None,
        expires_at=now + timedelta(days=int(expiry_days)) if expiry_days else None,
        ticket_id=ticket.id if ticket is not None else None,
        order_id=order.id if order is not None else None,
        order_amount=order_amount,
        actor_kind=actor.kind,
        actor_label=actor.label,
        created_at=now,
    )
    posted = _post(entry)
    if posted is not entry:
        return posted
    _ensure_balance(contact.id)
    if pending:
        _move_balance(contact.id, pending=points)
        _record(entry, "points.pending", actor, matures_at=entry.matures_at.isoformat())  # type: ignore[union-attr]
    else:
        _move_balance(contact.id, available=points)
        _record(entry, "points.earned", actor)
        evaluate_tier(contact, actor=actor, now=now)
    return entry


def _take_from_lots(contact_id: int, points: int) -> list[list[int]]:
    """Draw ``points`` from the contact's posted lots, oldest first; return the allocations."""
    lots = db.session.scalars(
        select(PointsEntry)
        .where(
            PointsEntry.contact_id == contact_id,
            PointsEntry.kind.in_((EntryKind.EARN, EntryKind.REVERSE)),
            PointsEntry.state == EntryState.POSTED,
            PointsEntry.remaining > 0,
        )
        .order_by(PointsEntry.created_at, PointsEntry.id)
    )
    allocations: list[list[int]] = []
    left = points
    for lot in lots:
        if left <= 0:
            break
        take = min(lot.remaining, left)
        lot.remaining -= take
        allocations.append([lot.id, take])
        left -= take
    return allocations


def deduct_points(
    contact: Contact,
    points: int,
    *,
    actor: Actor,
    reason: str,
    key: str,
    ticket: Ticket | None = None,
    order: Order | None = None,
) -> PointsEntry:
    """Spend ``points`` from the oldest lots; refused (``insufficient_points``) if the
    available balance is short. Idempotent on ``key``."""
    if points <= 0:
        raise LoyaltyError("points to deduct must be above zero", code="invalid_points", status=422)
    existing = _by_key(key)
    if existing is not None:
        return existing
    _ensure_balance(contact.id)
    taken = changed_rows(
        update(PointsBalance)
        .where(PointsBalance.contact_id == contact.id, PointsBalance.available >= points)
        .values(available=PointsBalance.available - points, updated_at=utcnow())
    )
    if taken != 1:
        raise LoyaltyError(
            f"{contact.display_name} has fewer than {points} points available",
            code="insufficient_points",
        )
    entry = PointsEntry(
        contact_id=contact.id,
        kind=EntryKind.SPEND,
        points=-points,
        key=key,
        reason=reason,
        allocations=_take_from_lots(contact.id, points),
        ticket_id=ticket.id if ticket is not None else None,
        order_id=order.id if order is not None else None,
        actor_kind=actor.kind,
        actor_label=actor.label,
    )
    posted = _post(entry)
    if posted is not entry:  # pragma: no cover - the balance row lock makes this unreachable
        raise LoyaltyError("this spend was posted meanwhile", code="conflict")
    _record(entry, "points.spent", actor)
    return entry


def reversed_points(entry: PointsEntry) -> int:
    """How many of ``entry``'s points its reversals have taken back so far (0 or more)."""
    total = db.session.scalar(
        select(func.coalesce(func.sum(PointsEntry.points), 0)).where(
            PointsEntry.reverses_id == entry.id
        )
    )
    return abs(int(total or 0))


def _latest_reversal(entry: PointsEntry) -> PointsEntry | None:
    return db.session.scalars(
        select(PointsEntry)
        .where(PointsEntry.reverses_id == entry.id)
        .order_by(PointsEntry.id.desc())
        .limit(1)
    ).first()


def reverse_entry(
    entry: PointsEntry, *, actor: Actor, reason: str, key: str | None = None
) -> PointsEntry:
    """Undo what is left of an earning or a spend with a new entry that references it and
    carries that amount (never a recomputation from today's rules). Reversing again
    returns the last reversal."""
    reversal = _reverse(entry, None, actor=actor, reason=reason, key=key or f"reverse:{entry.id}")
    if reversal is None:
        found = _latest_reversal(entry)
        assert found is not None  # nothing left to reverse means something was reversed
        return found
    return reversal


def reverse_entry_up_to(
    entry: PointsEntry, points: int, *, actor: Actor, reason: str, key: str
) -> PointsEntry | None:
    """Reverse ``entry`` until ``points`` of it are reversed in all (a partial refund):
    post the difference, or nothing (None) when that much is reversed already.
    Idempotent on ``key``: a replay returns the reversal the key posted."""
    if points < 0:
        raise LoyaltyError("points to reverse must not be negative", code="invalid_points")
    return _reverse(entry, points, actor=actor, reason=reason, key=key)


def _reverse(
    entry: PointsEntry, up_to: int | None, *, actor: Actor, reason: str, key: str
) -> PointsEntry | None:
    if entry.kind not in (EntryKind.EARN, EntryKind.SPEND):
        raise LoyaltyError("only earnings and spends can be reversed", code="not_reversible")
    existing = _by_key(key)
    if existing is not None:
        return existing
    # The balance row lock serialises reversals of one contact, so what has been reversed
    # already is read after every other reversal of this entry has committed.
    _lock_balance(entry.contact_id)
    existing = _by_key(key)
    if existing is not None:
        return existing
    db.session.refresh(entry)
    original = abs(entry.points)
    done = reversed_points(entry)
    points = min(original if up_to is None else up_to, original) - done
    if points <= 0:
        return None
    reversal = PointsEntry(
        contact_id=entry.contact_id,
        kind=EntryKind.REVERSE,
        points=-points if entry.kind is EntryKind.EARN else points,
        key=key,
        reason=reason,
        reverses_id=entry.id,
        ticket_id=entry.ticket_id,
        order_id=entry.order_id,
        actor_kind=actor.kind,
        actor_label=actor.label,
    )
    if entry.kind is EntryKind.EARN:
        _reverse_earning(entry, reversal, points, settles=done + points == original)
    else:
        # Points given back after a refunded spend form a new lot with the latest expiry.
        reversal.remaining = points
        lot_ids = [lot_id for lot_id, _ in entry.allocations or []]
        if lot_ids:
            reversal.expires_at = db.session.scalar(
                select(func.max(PointsEntry.expires_at)).where(PointsEntry.id.in_(lot_ids))
            )
        _move_balance(entry.contact_id, available=points)
    posted = _post(reversal)
    if posted is not reversal:
        return posted
    _record(reversal, "points.reversed", actor, reverses=entry.id)
    contact = db.session.get(Contact, entry.contact_id)
    if contact is not None:
        evaluate_tier(contact, actor=actor)
    return reversal


def _reverse_earning(
    entry: PointsEntry, reversal: PointsEntry, points: int, *, settles: bool
) -> None:
    """Take ``points`` back from an earned lot; ``settles`` when nothing of it is left."""
    if entry.state is EntryState.PENDING:
        # Nothing is spent from a pending lot, so ``remaining`` is what is not reversed.
        # A partial reversal waits with the lot (both mature together); the last one
        # settles the lot against its reversals, and none of them touches ``available``.
        reversal.allocations = [[entry.id, points]]
        entry.remaining -= points
        _move_balance(entry.contact_id, pending=-points)
        if settles:
            entry.state = EntryState.POSTED
            _post_pending_reversals(entry)
        else:
            reversal.state = EntryState.PENDING
        return
    # Points already spent are taken back from the balance all the same (it may go below
    # zero); only what is left of the lot is marked as used.
    take = min(entry.remaining, points)
    reversal.allocations = [[entry.id, take]] if take else []
    entry.remaining -= take
    _move_balance(entry.contact_id, available=-points)


def _post_pending_reversals(entry: PointsEntry) -> None:
    db.session.execute(
        update(PointsEntry)
        .where(PointsEntry.reverses_id == entry.id, PointsEntry.state == EntryState.PENDING)
        .values(state=EntryState.POSTED)
        .execution_options(synchronize_session=False)
    )


def balance(contact: Contact) -> Balance:
    """The contact's points from the projection row (zero when they never had any)."""
    row = db.session.get(PointsBalance, contact.id)
    if row is None:
        return Balance(0, 0)
    db.session.refresh(row)
    return Balance(row.available, row.pending)


def ledger_balance(contact: Contact) -> Balance:
    """The same figures summed from the ledger itself (to check the projection)."""
    available, pending = db.session.execute(
        select(
            func.coalesce(
                func.sum(case((PointsEntry.state == EntryState.POSTED, PointsEntry.points))), 0
            ),
            func.coalesce(
                func.sum(case((PointsEntry.state == EntryState.PENDING, PointsEntry.points))), 0
            ),
        ).where(PointsEntry.contact_id == contact.id)
    ).one()
    return Balance(int(available), int(pending))


# ------------------------------------------------------------------ maturing and expiry


def mature_pending_points(*, now: datetime | None = None, actor: Actor = SYSTEM) -> int:
    """Make points spendable whose return window has passed; return how many entries."""
    now = now or utcnow()
    due = db.session.scalars(
        select(PointsEntry)
        .where(PointsEntry.state == EntryState.PENDING, PointsEntry.matures_at <= now)
        .order_by(PointsEntry.id)
        .limit(1000)
    ).all()
    matured = 0
    for entry in due:
        moved = changed_rows(
            update(PointsEntry)
            .where(PointsEntry.id == entry.id, PointsEntry.state == EntryState.PENDING)
            .values(state=EntryState.POSTED)
        )
        if moved != 1:
            continue
        db.session.refresh(entry)
        # A lot partly reversed by a refund matures net of its reversals, which post with it.
        left = entry.points - reversed_points(entry)
        _post_pending_reversals(entry)
        _move_balance(entry.contact_id, pending=-left, available=left)
        audit.record(
            "points.matured",
            actor=actor,
            contact_id=entry.contact_id,
            ticket_id=entry.ticket_id,
            entry_id=entry.id,
            points=left,
        )
        contact = db.session.get(Contact, entry.contact_id)
        if contact is not None:
            evaluate_tier(contact, actor=actor, now=now)
        matured += 1
    return matured


def expire_points(*, now: datetime | None = None, actor: Actor = SYSTEM) -> int:
    """Post an expiry for what is left of each lot past its date; return points expired."""
    now = now or utcnow()
    lots = db.session.execute(
        select(PointsEntry.id, PointsEntry.contact_id)
        .where(
            PointsEntry.state == EntryState.POSTED,
            PointsEntry.remaining > 0,
            PointsEntry.expires_at <= now,
        )
        .order_by(PointsEntry.contact_id, PointsEntry.id)
        .limit(1000)
    ).all()
    total = 0
    for lot_id, contact_id in lots:
        _lock_balance(contact_id)
        lot = db.session.get(PointsEntry, lot_id)
        assert lot is not None
        db.session.refresh(lot)
        if lot.remaining <= 0:
            continue
        left = lot.remaining
        lot.remaining = 0
        entry = PointsEntry(
            contact_id=contact_id,
            kind=EntryKind.EXPIRE,
            points=-left,
            key=f"expire:{lot.id}",
            reason="points expired",
            allocations=[[lot.id, left]],
            actor_kind=actor.kind,
            actor_label=actor.label,
        )
        if _post(entry) is not entry:
            continue
        _move_balance(contact_id, available=-left)
        _record(entry, "points.expired", actor, lot=lot.id)
        total += left
    return total


# ------------------------------------------------------------------ tiers


def seed_tiers() -> list[LoyaltyTier]:
    """Create bronze, silver, gold and platinum unless tiers exist already."""
    existing = db.session.scalars(select(LoyaltyTier).order_by(LoyaltyTier.rank)).all()
    if existing:
        return list(existing)
    tiers = [
        LoyaltyTier(key=key, name=name, threshold=threshold, rank=rank)
        for rank, (key, name, threshold) in enumerate(rules.DEFAULT_TIERS)
    ]
    db.session.add_all(tiers)
    db.session.flush()
    return tiers


def _tiers() -> list[rules.Tier]:
    rows = db.session.scalars(select(LoyaltyTier).order_by(LoyaltyTier.rank)).all()
    if not rows:
        rows = seed_tiers()
    return [rules.Tier(r.key, r.threshold, r.rank) for r in rows]


def points_earned_since(contact_id: int, since: datetime) -> int:
    """Points earned (and not reversed) since ``since``; spending does not lower a tier."""
    earned = db.session.scalar(
        select(func.coalesce(func.sum(PointsEntry.points), 0)).where(
            PointsEntry.contact_id == contact_id,
            PointsEntry.created_at >= since,
            PointsEntry.state == EntryState.POSTED,
            (PointsEntry.kind == EntryKind.EARN)
            | ((PointsEntry.kind == EntryKind.REVERSE) & (PointsEntry.points < 0)),
        )
    )
    return int(earned or 0)


def evaluate_tier(
    contact: Contact, *, actor: Actor = SYSTEM, now: datetime | None = None
) -> ContactTier:
    """Bring the contact's tier up to date with their earnings (grace period on the way down)."""
    now = now or utcnow()
    tiers = _tiers()
    by_key = {t.key: t for t in tiers}
    since = now - timedelta(days=int(setting("RAPPORT_TIER_PERIOD_DAYS")))
    qualified = rules.qualified_tier(tiers, points_earned_since(contact.id, since))
    row = db.session.get(ContactTier, contact.id)
    current = None
    if row is not None and row.tier_key in by_key:
        current = rules.TierState(by_key[row.tier_key], row.grace_until)
    state = rules.next_tier_state(current, qualified, now, int(setting("RAPPORT_TIER_GRACE_DAYS")))
    if row is None:
        row = ContactTier(contact_id=contact.id, tier_key=state.tier.key, since=now)
        db.session.add(row)
        old = None
    else:
        old = row.tier_key
    row.grace_until = state.grace_until
    row.evaluated_at = now
    if old != state.tier.key:
        row.tier_key = state.tier.key
        row.since = now
        if old is not None or state.tier.rank > 0:
            audit.record(
                "loyalty.tier_changed",
                actor=actor,
                contact_id=contact.id,
                old=old,
                new=row.tier_key,
            )
            events.on_commit(
                TierChanged(actor=actor, contact_id=contact.id, old=old, new=row.tier_key)
            )
    db.session.flush()
    return row


def reevaluate_tiers(*, now: datetime | None = None) -> int:
    """Re-check every contact above the lowest tier (grace periods end, earnings age out)."""
    ids = db.session.scalars(select(ContactTier.contact_id)).all()
    changed = 0
    for contact_id in ids:
        contact = db.session.get(Contact, contact_id)
        if contact is None:
            continue
        before = db.session.get(ContactTier, contact_id)
        old = before.tier_key if before else None
        if evaluate_tier(contact, now=now).tier_key != old:
            changed += 1
    return changed


# ------------------------------------------------------------------ orders


def _earn_key(order: Order) -> str:
    return f"order:{order.id}:earn"


def _refund_key(order: Order) -> str:
    # Refunds arrive as the order's cumulative refunded amount, so that amount names one
    # refund: a replay of it maps to the same key and posts nothing new.
    cents = int((order.refunded_total or Decimal("0")) * 100)
    return f"order:{order.id}:refund:{cents}"


def apply_order(order: Order, *, actor: Actor = SYSTEM) -> PointsEntry | None:
    """Award points for a paid order (pending through the return window); when it is
    refunded, take back the refunded share of the points it earned (all of them when
    refunded in full or cancelled), copying from the original amount. Returns the
    earning, or the reversal this call posted or replayed."""
    earned = _by_key(_earn_key(order))
    if order.status in (OrderStatus.REFUNDED, OrderStatus.CANCELLED):
        if earned is None:
            return None
        return reverse_entry(
            earned, actor=actor, reason=f"order {order.external_id} {order.status.value}"
        )
    if earned is not None:
        return _reverse_refunded_share(order, earned, actor) or earned
    if not order.status.counts_as_sale:
        return None
    points = rules.points_for_spend(
        order.net_total, Decimal(str(setting("RAPPORT_POINTS_SPEND_UNIT")))
    )
    entry = None
    if points > 0:
        entry = award_points(
            order.contact,
            points,
            actor=actor,
            reason=f"order {order.external_id}",
            key=_earn_key(order),
            order=order,
            pending_days=int(setting("RAPPORT_POINTS_PENDING_DAYS")),
            order_amount=order.net_total,
        )
    reward_referral(order, actor=actor)
    return entry


def _reverse_refunded_share(order: Order, earned: PointsEntry, actor: Actor) -> PointsEntry | None:
    """After a partial refund, reverse the earning until the refunded share is taken back."""
    # Earnings from before ``order_amount`` existed were made on the order's full total.
    earned_on = earned.order_amount if earned.order_amount is not None else order.total
    target = rules.points_to_reverse(earned.points, Decimal(earned_on), order.net_total)
    if target <= 0:
        return None
    return reverse_entry_up_to(
        earned,
        target,
        actor=actor,
        reason=f"order {order.external_id} partly refunded ({order.refunded_total})",
        key=_refund_key(order),
    )


# ------------------------------------------------------------------ referrals


def referral_code_for(
    contact: Contact, *, actor: Actor, ip: str | None = None, user_agent: str | None = None
) -> ReferralCode:
    """Return the contact's referral code, creating it (with where they shared it from)."""
    found = db.session.execute(
        select(ReferralCode).where(ReferralCode.contact_id == contact.id)
    ).scalar_one_or_none()
    if found is not None:
        return found
    code = ReferralCode(
        contact_id=contact.id, code=codes.generate_code(), ip=ip, user_agent=user_agent
    )
    try:
        with db.session.begin_nested():
            db.session.add(code)
            db.session.flush()
    except IntegrityError:
        return db.session.execute(
            select(ReferralCode).where(ReferralCode.contact_id == contact.id)
        ).scalar_one()
    audit.record("referral.code_created", actor=actor, contact_id=contact.id, code=code.code)
    return code


def _emails(contact: Contact) -> set[str]:
    from channels.base import IdentityKind

    return {
        rules.normalise_email(i.value) for i in contact.identities if i.kind is IdentityKind.EMAIL
    }


def _has_paid_order(contact_id: int) -> bool:
    sales = [s for s in OrderStatus if s.counts_as_sale] + [OrderStatus.REFUNDED]
    return bool(
        db.session.execute(
            select(Order.id).where(Order.contact_id == contact_id, Order.status.in_(sales)).limit(1)
        ).first()
    )


def block_reason(
    code: ReferralCode, referrer: Contact, referee: Contact, ip: str | None, user_agent: str | None
) -> str | None:
    """Why a referral must not be rewarded, or None when it may."""
    if referrer.id == referee.id:
        return "self_referral"
    if _emails(referrer) & _emails(referee):
        return "same_email"
    if ip and user_agent and ip == code.ip and user_agent == code.user_agent:
        return "same_device"
    if _has_paid_order(referee.id):
        return "existing_customer"
    return None


def record_referral(
    code: str,
    referee: Contact,
    *,
    actor: Actor,
    ip: str | None = None,
    user_agent: str | None = None,
) -> Referral:
    """Note that ``referee`` signed up with ``code``; blocked with a reason when it looks
    like abuse. A contact is referred once; asking again returns the first referral."""
    normalised = codes.normalise(code)
    found = db.session.execute(
        select(ReferralCode).where(ReferralCode.code == normalised)
    ).scalar_one_or_none()
    if found is None:
        raise LoyaltyError("unknown referral code", code="unknown", status=404)
    existing = db.session.execute(
        select(Referral).where(Referral.referee_id == referee.id)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    referrer = db.session.get(Contact, found.contact_id)
    assert referrer is not None
    reason = block_reason(found, referrer, referee, ip, user_agent)
    referral = Referral(
        referrer_id=referrer.id,
        referee_id=referee.id,
        code=found.code,
        status=ReferralStatus.BLOCKED if reason else ReferralStatus.PENDING,
        block_reason=reason,
        ip=ip,
        user_agent=(user_agent or "")[:400] or None,
    )
    try:
        with db.session.begin_nested():
            db.session.add(referral)
            db.session.flush()
    except IntegrityError:
        return db.session.execute(
            select(Referral).where(Referral.referee_id == referee.id)
        ).scalar_one()
    for contact_id in {referrer.id, referee.id}:
        audit.record(
            "referral.blocked" if reason else "referral.recorded",
            actor=actor,
            contact_id=contact_id,
            referral_id=referral.id,
            referrer_id=referrer.id,
            referee_id=referee.id,
            reason=reason,
        )
    return referral


def reward_referral(order: Order, *, actor: Actor = SYSTEM) -> Referral | None:
    """After the referee's first paid order, reward both sides once."""
    referral = db.session.execute(
        select(Referral).where(
            Referral.referee_id == order.contact_id, Referral.status == ReferralStatus.PENDING
        )
    ).scalar_one_or_none()
    if referral is None or not order.status.counts_as_sale:
        return None
    first_paid = db.session.scalar(
        select(func.min(Order.id)).where(
            Order.contact_id == order.contact_id,
            Order.status.in_([s for s in OrderStatus if s.counts_as_sale]),
        )
    )
    if first_paid != order.id:
        return None
    claimed = changed_rows(
        update(Referral)
        .where(Referral.id == referral.id, Referral.status == ReferralStatus.PENDING)
        .values(status=ReferralStatus.REWARDED, rewarded_at=utcnow(), order_id=order.id)
    )
    if claimed != 1:
        return None
    referrer = db.session.get(Contact, referral.referrer_id)
    referee = db.session.get(Contact, referral.referee_id)
    assert referrer is not None and referee is not None
    for who, key, setting_name in (
        (referrer, "referrer", "RAPPORT_REFERRAL_REFERRER_POINTS"),
        (referee, "referee", "RAPPORT_REFERRAL_REFEREE_POINTS"),
    ):
        points = int(setting(setting_name))
        if points > 0:
            award_points(
                who,
                points,
                actor=actor,
                reason=f"referral #{referral.id}",
                key=f"referral:{referral.id}:{key}",
                order=order if who is referee else None,
            )
    db.session.refresh(referral)
    events.on_commit(
        ReferralRewarded(
            actor=actor,
            referral_id=referral.id,
            referrer_id=referral.referrer_id,
            referee_id=referral.referee_id,
        )
    )
    return referral
