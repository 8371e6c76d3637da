"""Incentive operations: policies, grants, approval, vouchers, redemption and reversal.

Bounds are enforced by the database, never by reading and then writing: the
grant key is unique (a race loses at the constraint and reads the winner),
per-contact caps are counted under a row lock, budgets move by a conditional
``UPDATE … WHERE spent + cost <= limit``, and a redemption is one conditional
``UPDATE`` of the voucher's status.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from helpdesk import events
from helpdesk.actors import SYSTEM, Actor
from helpdesk.extensions import db
from helpdesk.models import Contact, Role, Ticket, User, utcnow
from helpdesk.operations import audit
from helpdesk.operations.contacts import OperationError

from . import bulk, codes
from .events import (
    IncentiveDecided,
    IncentiveGranted,
    RedemptionReversed,
    VoucherIssued,
    VoucherRedeemed,
)
from .facts import facts_for
from .models import (
    BudgetAccount,
    BudgetPosting,
    CodeGuessWindow,
    GrantStatus,
    IncentiveCapLock,
    IncentiveGrant,
    IncentivePolicy,
    RedemptionReversal,
    Voucher,
    VoucherRedemption,
    VoucherStatus,
)
from .policy import (
    BudgetPeriod,
    Facts,
    PolicyError,
    PolicyTerms,
    Reward,
    RewardKind,
    check_terms,
    evaluate,
    expiry,
    needs_approval,
    period_start,
)
from .sql import changed_rows, insert_or_ignore, upsert_insert

log = logging.getLogger(__name__)

GOODWILL_KEY = "goodwill"
DEFAULT_GOODWILL_LIMITS = {"read_only": "0", "agent": "25", "admin": "500"}
_USABLE = (VoucherStatus.ISSUED, VoucherStatus.SENT)


class IncentiveError(OperationError):
    """A request the incentive rules refuse; ``code`` is machine-readable."""

    def __init__(self, message: str, *, code: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class VoucherRefused(IncentiveError):
    """A code that cannot be used; ``code`` says why (for shops and people alike)."""

    STATUS = {
        "unknown": 404,
        "not_yours": 403,
        "already_used": 409,
        "pending_approval": 409,
        "expired": 410,
        "void": 410,
        "below_minimum": 422,
        "wrong_currency": 422,
    }
    MESSAGES = {
        "unknown": "No voucher has this code.",
        "not_yours": "This voucher belongs to another customer.",
        "already_used": "This voucher was used already.",
        "pending_approval": "This voucher waits for approval and cannot be used yet.",
        "expired": "This voucher has expired.",
        "void": "This voucher was cancelled.",
        "below_minimum": "The order is below this voucher's minimum.",
        "wrong_currency": "This voucher is in another currency.",
    }

    def __init__(self, reason: str, **extra: Any) -> None:
        super().__init__(self.MESSAGES[reason], code=reason, status=self.STATUS[reason])
        self.reason = reason
        self.extra = extra


# ------------------------------------------------------------------ policies

_POLICY_FIELDS = (
    "name",
    "description",
    "kind",
    "value",
    "currency",
    "valid_days",
    "valid_until",
    "minimum_order",
    "is_holder_only",
    "cap_count",
    "cap_window_days",
    "budget_amount",
    "budget_period",
    "approval_threshold",
    "cost_estimate",
    "restores_on_refund",
    "options",
    "conditions",
    "is_active",
)


def _check(policy: IncentivePolicy) -> None:
    try:
        check_terms(policy.terms())
    except PolicyError as exc:
        raise IncentiveError(str(exc), code="invalid_policy") from None


def create_policy(
    *, actor: Actor, key: str, name: str, kind: RewardKind, value: Decimal, **terms: Any
) -> IncentivePolicy:
    """Define a new policy (version 1)."""
    key = key.strip().lower()
    if not key:
        raise IncentiveError("a policy needs a key", code="invalid_policy")
    unknown = sorted(set(terms) - set(_POLICY_FIELDS))
    if unknown:
        raise IncentiveError(
            f"unknown policy field(s): {', '.join(unknown)}", code="invalid_policy"
        )
    if db.session.execute(select(IncentivePolicy.id).where(IncentivePolicy.key == key)).first():
        raise IncentiveError(f"a policy '{key}' exists already", code="conflict", status=409)
    policy = IncentivePolicy(
        key=key,
        version=1,
        is_current=True,
        name=name,
        kind=kind,
        value=Decimal(value),
        created_by=actor.label,
        **{"conditions": {}, "options": {}, **terms},
    )
    _check(policy)
    db.session.add(policy)
    db.session.flush()
    audit.record("incentive.policy_created", actor=actor, policy_id=policy.id, key=key, version=1)
    return policy


def update_policy(policy: IncentivePolicy, *, actor: Actor, **changes: Any) -> IncentivePolicy:
    """Edit a policy by adding its next version; grants already made keep theirs."""
    unknown = sorted(set(changes) - set(_POLICY_FIELDS))
    if unknown:
        raise IncentiveError(
            f"unknown policy field(s): {', '.join(unknown)}", code="invalid_policy"
        )
    current = db.session.execute(
        select(IncentivePolicy)
        .where(IncentivePolicy.key == policy.key, IncentivePolicy.is_current.is_(True))
        .with_for_update()
    ).scalar_one()
    values = {name: getattr(current, name) for name in _POLICY_FIELDS}
    values.update(changes)
    successor = IncentivePolicy(
        key=current.key,
        version=current.version + 1,
        is_current=True,
        created_by=actor.label,
        **values,
    )
    _check(successor)
    current.is_current = False
    db.session.add(successor)
    db.session.flush()
    audit.record(
        "incentive.policy_updated",
        actor=actor,
        policy_id=successor.id,
        key=successor.key,
        version=successor.version,
        changes=sorted(changes),
    )
    return successor


def get_policy(policy: IncentivePolicy | str) -> IncentivePolicy:
    """The policy itself, or the current version of the one with this key."""
    if isinstance(policy, IncentivePolicy):
        return policy
    found = db.session.execute(
        select(IncentivePolicy).where(
            IncentivePolicy.key == policy.strip().lower(), IncentivePolicy.is_current.is_(True)
        )
    ).scalar_one_or_none()
    if found is None:
        raise IncentiveError(f"no incentive policy '{policy}'", code="unknown_policy", status=404)
    return found


# ------------------------------------------------------------------ grants


@dataclass(frozen=True, slots=True)
class GrantResult:
    """What asking for a grant did.

    ``status`` is ``granted``, ``pending_approval`` or ``rejected`` for a stored grant
    (new, or found under the same key: ``created`` False), else why nothing was
    stored: ``not_eligible``, ``cap_reached`` or ``budget_exhausted``. A dry run
    stores nothing and says what would have happened.
    """

    status: str
    key: str
    rewards: tuple[Reward, ...] = ()
    cost: Decimal = Decimal("0.00")
    created: bool = False
    dry_run: bool = False
    grant: IncentiveGrant | None = None
    voucher: Voucher | None = None
    facts: Facts | None = field(default=None, repr=False)

    @property
    def is_granted(self) -> bool:
        return self.status in ("granted", "pending_approval")


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Duplicate(Exception):
    pass


def grant_key(policy: IncentivePolicy, contact: Contact, ticket: Ticket | None) -> str:
    """One grant per policy version, ticket and contact (reopening a ticket changes nothing)."""
    ticket_part = ticket.id if ticket is not None else "-"
    return f"policy:{policy.id}:v{policy.version}:ticket:{ticket_part}:contact:{contact.id}"


def _grant_by_key(key: str) -> IncentiveGrant | None:
    return db.session.execute(
        select(IncentiveGrant).where(IncentiveGrant.grant_key == key)
    ).scalar_one_or_none()


def _replay(grant: IncentiveGrant) -> GrantResult:
    return GrantResult(
        status=grant.status.value,
        key=grant.grant_key,
        cost=grant.cost,
        created=False,
        grant=grant,
        voucher=grant.voucher,
    )


def grant_incentive(
    policy: IncentivePolicy | str,
    *,
    contact: Contact,
    ticket: Ticket | None = None,
    actor: Actor,
    reason: str,
    key: str | None = None,
    dry_run: bool = False,
    facts: Facts | None = None,
) -> GrantResult:
    """Evaluate ``policy`` for the contact (and ticket) and grant what it gives, once per key,
    within its caps and budget; above its approval threshold the grant waits for a lead.

    ``facts`` replaces what is read from the database (a survey score the caller knows).
    """
    return _grant_incentive(
        get_policy(policy),
        contact=contact,
        ticket=ticket,
        actor=actor,
        reason=reason,
        key=key,
        dry_run=dry_run,
        facts=facts,
    )


def _grant_incentive(
    policy: IncentivePolicy,
    *,
    contact: Contact,
    ticket: Ticket | None,
    actor: Actor,
    reason: str,
    key: str | None,
    dry_run: bool,
    facts: Facts | None,
    value: Decimal | None = None,
    approval: bool | None = None,
) -> GrantResult:
    key = key or grant_key(policy, contact, ticket)
    facts = facts or facts_for(contact, ticket)
    rewards = evaluate(policy, facts, value=value)
    if not rewards:
        return GrantResult(status="not_eligible", key=key, facts=facts, dry_run=dry_run)
    reward = rewards[0]
    terms = policy.terms()
    pending = needs_approval(terms, reward.cost) if approval is None else approval
    base = {"key": key, "rewards": tuple(rewards), "cost": reward.cost, "facts": facts}
    existing = _grant_by_key(key)
    if existing is not None:
        return _replay(existing)
    if dry_run:
        refusal = _would_refuse(terms, contact, reward, facts.at)
        status = refusal or ("pending_approval" if pending else "granted")
        return GrantResult(status=status, dry_run=True, **base)  # type: ignore[arg-type]
    for attempt in range(3):
        try:
            with db.session.begin_nested():
                grant = _store_grant(
                    policy, terms, reward, contact, ticket, actor, reason, key, pending, facts.at
                )
        except _Duplicate:
            found = _grant_by_key(key)
            assert found is not None
            return _replay(found)
        except _Refused as refused:
            audit.record(
                "incentive.refused",
                actor=actor,
                contact_id=contact.id,
                ticket_id=ticket.id if ticket else None,
                policy=policy.key,
                version=policy.version,
                refusal=refused.reason,
                cost=str(reward.cost),
                reason=reason,
            )
            return GrantResult(status=refused.reason, **base)  # type: ignore[arg-type]
        except IntegrityError:
            found = _grant_by_key(key)
            if found is not None:
                return _replay(found)
            if attempt == 2:
                raise
            log.info("grant %s collided on a voucher code; trying a new code", key)
            continue
        return GrantResult(
            status=grant.status.value,
            created=True,
            grant=grant,
            voucher=grant.voucher,
            **base,  # type: ignore[arg-type]
        )
    raise AssertionError("unreachable")


def _cap_count(terms: PolicyTerms, contact: Contact, at: datetime) -> int:
    since = at - timedelta(days=terms.cap_window_days or 0)
    return int(
        db.session.scalar(
            select(func.count(IncentiveGrant.id)).where(
                IncentiveGrant.contact_id == contact.id,
                IncentiveGrant.policy_key == terms.key,
                IncentiveGrant.status != GrantStatus.REJECTED,
                IncentiveGrant.created_at > since,
            )
        )
        or 0
    )


def _cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def _would_refuse(terms: PolicyTerms, contact: Contact, reward: Reward, at: datetime) -> str | None:
    """The dry-run answer: read without locks, write nothing."""
    if terms.cap_count is not None and _cap_count(terms, contact, at) >= terms.cap_count:
        return "cap_reached"
    if terms.budget_amount is not None and terms.budget_period is not None:
        spent = db.session.scalar(
            select(BudgetAccount.spent_cents).where(
                BudgetAccount.policy_key == terms.key,
                BudgetAccount.period_start == period_start(terms.budget_period, at),
            )
        )
        if (spent or 0) + _cents(reward.cost) > _cents(terms.budget_amount):
            return "budget_exhausted"
    return None


def _store_grant(
    policy: IncentivePolicy,
    terms: PolicyTerms,
    reward: Reward,
    contact: Contact,
    ticket: Ticket | None,
    actor: Actor,
    reason: str,
    key: str,
    pending: bool,
    at: datetime,
) -> IncentiveGrant:
    if terms.cap_count is not None:
        # Serialise grants of this policy to this contact; then count (never check-then-act).
        insert_or_ignore(IncentiveCapLock.__table__, contact_id=contact.id, policy_key=terms.key)
        db.session.execute(
            select(IncentiveCapLock.contact_id)
            .where(
                IncentiveCapLock.contact_id == contact.id, IncentiveCapLock.policy_key == terms.key
            )
            .with_for_update()
        )
        if _grant_by_key(key) is not None:  # whoever held the lock granted this very key
            raise _Duplicate
        if _cap_count(terms, contact, at) >= terms.cap_count:
            raise _Refused("cap_reached")
    grant = IncentiveGrant(
        grant_key=key,
        policy_id=policy.id,
        policy_key=policy.key,
        contact_id=contact.id,
        ticket_id=ticket.id if ticket else None,
        status=GrantStatus.PENDING_APPROVAL if pending else GrantStatus.GRANTED,
        kind=reward.kind,
        value=reward.value,
        currency=reward.currency,
        cost=reward.cost,
        reason=reason[:500],
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_label=actor.label,
        created_at=at,
    )
    db.session.add(grant)
    db.session.flush()  # the unique grant key: a concurrent twin fails here
    if terms.budget_amount is not None and terms.budget_period is not None and reward.cost > 0:
        _charge_budget(
            terms.key, terms.budget_period, terms.budget_amount, terms.currency, grant, at
        )
    voucher = None
    if reward.kind.is_voucher:
        voucher = Voucher(
            code=codes.generate_code(),
            grant=grant,
            policy_id=policy.id,
            contact_id=contact.id,
            ticket_id=grant.ticket_id,
            kind=reward.kind,
            value=reward.value,
            currency=reward.currency,
            minimum_order=reward.minimum_order,
            is_holder_only=reward.is_holder_only,
            restores_on_refund=policy.restores_on_refund,
            status=VoucherStatus.PENDING_APPROVAL if pending else VoucherStatus.ISSUED,
            created_at=at,
            issued_at=None if pending else at,
            expires_at=reward.expires_at,
        )
        db.session.add(voucher)
        db.session.flush()
    elif not pending:
        _award_grant_points(grant, contact, ticket, actor)
    audit.record(
        "incentive.pending_approval" if pending else "incentive.issued",
        actor=actor,
        contact_id=contact.id,
        ticket_id=grant.ticket_id,
        grant_id=grant.id,
        policy=policy.key,
        version=policy.version,
        kind=reward.kind.value,
        value=str(reward.value),
        currency=reward.currency,
        cost=str(reward.cost),
        code=voucher.display_code if voucher else None,
        reason=reason,
    )
    events.on_commit(
        IncentiveGranted(
            actor=actor,
            grant_id=grant.id,
            contact_id=contact.id,
            ticket_id=grant.ticket_id,
            status=grant.status.value,
        )
    )
    if voucher is not None and not pending:
        events.on_commit(
            VoucherIssued(
                actor=actor, voucher_id=voucher.id, contact_id=contact.id, ticket_id=grant.ticket_id
            )
        )
    return grant


def _award_grant_points(
    grant: IncentiveGrant, contact: Contact, ticket: Ticket | None, actor: Actor
) -> None:
    from automation.loyalty.operations import award_points

    entry = award_points(
        contact,
        int(grant.value),
        actor=actor,
        reason=grant.reason or grant.policy_key,
        key=f"grant:{grant.grant_key}",
        ticket=ticket,
    )
    grant.points_entry_id = entry.id


def _charge_budget(
    policy_key: str,
    period: BudgetPeriod,
    limit: Decimal,
    currency: str | None,
    grant: IncentiveGrant,
    at: datetime,
) -> None:
    start = period_start(period, at)
    insert_or_ignore(
        BudgetAccount.__table__,
        policy_key=policy_key,
        period=period.value,
        period_start=start,
        limit_cents=_cents(limit),
        spent_cents=0,
        currency=currency,
    )
    account_id = db.session.scalar(
        select(BudgetAccount.id).where(
            BudgetAccount.policy_key == policy_key, BudgetAccount.period_start == start
        )
    )
    cost = _cents(grant.cost)
    charged = changed_rows(
        update(BudgetAccount)
        .where(
            BudgetAccount.id == account_id,
            BudgetAccount.spent_cents + cost <= _cents(limit),
        )
        .values(spent_cents=BudgetAccount.spent_cents + cost, limit_cents=_cents(limit))
    )
    if charged != 1:
        raise _Refused("budget_exhausted")
    db.session.add(
        BudgetPosting(account_id=account_id, grant_id=grant.id, amount=grant.cost, memo="grant")
    )


def _release_budget(grant: IncentiveGrant) -> None:
    posting = db.session.execute(
        select(BudgetPosting).where(
            BudgetPosting.grant_id == grant.id, BudgetPosting.memo == "grant"
        )
    ).scalar_one_or_none()
    if posting is None:
        return
    db.session.execute(
        update(BudgetAccount)
        .where(BudgetAccount.id == posting.account_id)
        .values(spent_cents=BudgetAccount.spent_cents - _cents(posting.amount))
        .execution_options(synchronize_session=False)
    )
    db.session.add(
        BudgetPosting(
            account_id=posting.account_id,
            grant_id=grant.id,
            amount=-posting.amount,
            memo="released",
        )
    )


def budget_spent(policy: IncentivePolicy | str, at: datetime | None = None) -> Decimal:
    """What the policy's budget account for the period of ``at`` has spent (sum of postings)."""
    policy = get_policy(policy)
    if policy.budget_period is None:
        return Decimal("0.00")
    start = period_start(policy.budget_period, at or utcnow())
    total = db.session.scalar(
        select(func.coalesce(func.sum(BudgetPosting.amount), 0))
        .join(BudgetAccount, BudgetAccount.id == BudgetPosting.account_id)
        .where(BudgetAccount.policy_key == policy.key, BudgetAccount.period_start == start)
    )
    return Decimal(str(total)).quantize(Decimal("0.01"))


# ------------------------------------------------------------------ approval


def _decide(grant: IncentiveGrant, to: GrantStatus, actor: Actor, note: str) -> bool:
    decided = changed_rows(
        update(IncentiveGrant)
        .where(IncentiveGrant.id == grant.id, IncentiveGrant.status == GrantStatus.PENDING_APPROVAL)
        .values(
            status=to,
            decided_at=utcnow(),
            decided_by_id=actor.id if actor.is_user else None,
            decision_note=note[:500],
        )
    )
    db.session.refresh(grant)
    return decided == 1


def _require_lead(actor: Actor) -> None:
    if actor.kind == "system":
        return
    user = db.session.get(User, actor.id) if actor.is_user else None
    if user is None or not user.can(Role.ADMIN):
        raise IncentiveError(
            "only a lead (admin) may decide on grants", code="forbidden", status=403
        )


def approve_grant(grant: IncentiveGrant, *, actor: Actor, note: str = "") -> IncentiveGrant:
    """Let a grant that waited for approval go out: the voucher becomes usable, points post."""
    _require_lead(actor)
    if not _decide(grant, GrantStatus.GRANTED, actor, note):
        raise IncentiveError(
            f"grant #{grant.id} is {grant.status.value}, not pending", code="conflict", status=409
        )
    now = utcnow()
    voucher = grant.voucher
    if voucher is not None:
        voucher.status = VoucherStatus.ISSUED
        voucher.issued_at = now
        voucher.expires_at = expiry(grant.policy.terms(), now)
        events.on_commit(
            VoucherIssued(
                actor=actor,
                voucher_id=voucher.id,
                contact_id=voucher.contact_id,
                ticket_id=grant.ticket_id,
            )
        )
    elif grant.kind is RewardKind.LOYALTY_POINTS:
        contact = db.session.get(Contact, grant.contact_id)
        ticket = db.session.get(Ticket, grant.ticket_id) if grant.ticket_id else None
        assert contact is not None
        _award_grant_points(grant, contact, ticket, actor)
    db.session.flush()
    audit.record(
        "incentive.approved",
        actor=actor,
        contact_id=grant.contact_id,
        ticket_id=grant.ticket_id,
        grant_id=grant.id,
        code=voucher.display_code if voucher else None,
        note=note,
    )
    events.on_commit(
        IncentiveDecided(actor=actor, grant_id=grant.id, contact_id=grant.contact_id, approved=True)
    )
    return grant


def reject_grant(grant: IncentiveGrant, *, actor: Actor, note: str = "") -> IncentiveGrant:
    """Refuse a grant that waited for approval: its voucher is void, its budget released."""
    _require_lead(actor)
    if not _decide(grant, GrantStatus.REJECTED, actor, note):
        raise IncentiveError(
            f"grant #{grant.id} is {grant.status.value}, not pending", code="conflict", status=409
        )
    if grant.voucher is not None:
        grant.voucher.status = VoucherStatus.VOID
        grant.voucher.voided_at = utcnow()
    _release_budget(grant)
    db.session.flush()
    audit.record(
        "incentive.rejected",
        actor=actor,
        contact_id=grant.contact_id,
        ticket_id=grant.ticket_id,
        grant_id=grant.id,
        note=note,
    )
    events.on_commit(
        IncentiveDecided(
            actor=actor, grant_id=grant.id, contact_id=grant.contact_id, approved=False
        )
    )
    return grant


def pending_grants(limit: int = 200) -> list[IncentiveGrant]:
    """Grants waiting for a lead, oldest first."""
    return list(
        db.session.scalars(
            select(IncentiveGrant)
            .where(IncentiveGrant.status == GrantStatus.PENDING_APPROVAL)
            .order_by(IncentiveGrant.created_at, IncentiveGrant.id)
            .limit(limit)
        )
    )


# ------------------------------------------------------------------ goodwill


def goodwill_limit(actor: Actor) -> Decimal:
    """How much an agent may give by hand without approval (by role; configurable)."""
    limits = {**DEFAULT_GOODWILL_LIMITS, **current_app.config.get("RAPPORT_GOODWILL_LIMITS", {})}
    if not actor.is_user:
        return Decimal("0")
    user = db.session.get(User, actor.id)
    if user is None or not user.is_active_user:
        return Decimal("0")
    return Decimal(str(limits.get(user.role.value, "0")))


def goodwill_policy(currency: str | None = None) -> IncentivePolicy:
    """The policy goodwill vouchers are issued under, created on first use."""
    try:
        return get_policy(GOODWILL_KEY)
    except IncentiveError:
        pass
    currency = currency or current_app.config.get("RAPPORT_DEFAULT_CURRENCY", "EUR")
    try:
        with db.session.begin_nested():
            return create_policy(
                actor=SYSTEM,
                key=GOODWILL_KEY,
                name="Goodwill voucher",
                description="Given by an agent by hand, within their role's limit.",
                kind=RewardKind.FIXED,
                value=Decimal("10"),
                currency=currency,
                valid_days=90,
            )
    except (IntegrityError, IncentiveError):
        return get_policy(GOODWILL_KEY)


def issue_goodwill_voucher(
    contact: Contact,
    *,
    actor: Actor,
    amount: Decimal,
    ticket: Ticket | None = None,
    reason: str = "goodwill",
    key: str | None = None,
) -> GrantResult:
    """Give a fixed-amount voucher by hand; above the agent's role limit it waits for a lead."""
    amount = Decimal(amount).quantize(Decimal("0.01"))
    if amount <= 0:
        raise IncentiveError("the amount must be above zero", code="invalid_amount")
    policy = goodwill_policy()
    return _grant_incentive(
        policy,
        contact=contact,
        ticket=ticket,
        actor=actor,
        reason=reason,
        key=key or f"goodwill:{uuid.uuid4().hex}",
        dry_run=False,
        facts=None,
        value=amount,
        approval=amount > goodwill_limit(actor),
    )


# ------------------------------------------------------------------ vouchers


def find_voucher(code: str) -> Voucher | None:
    """The voucher for a code as typed (normalised first), or None."""
    normal = codes.normalise(code)
    if not codes.is_well_formed(normal):
        return None
    return db.session.execute(select(Voucher).where(Voucher.code == normal)).scalar_one_or_none()


def mark_voucher_sent(voucher: Voucher, *, actor: Actor) -> bool:
    """Note that the code reached the customer (issued → sent)."""
    moved = changed_rows(
        update(Voucher)
        .where(Voucher.id == voucher.id, Voucher.status == VoucherStatus.ISSUED)
        .values(status=VoucherStatus.SENT, sent_at=utcnow())
    )
    db.session.refresh(voucher)
    if moved:
        audit.record(
            "voucher.sent",
            actor=actor,
            contact_id=voucher.contact_id,
            ticket_id=voucher.ticket_id,
            voucher_id=voucher.id,
        )
    return bool(moved)


def _status_refusal(voucher: Voucher, now: datetime) -> str | None:
    if voucher.status is VoucherStatus.PENDING_APPROVAL:
        return "pending_approval"
    if voucher.status is VoucherStatus.VOID:
        return "void"
    if voucher.status is VoucherStatus.REDEEMED:
        return "already_used"
    if voucher.status is VoucherStatus.EXPIRED or (
        voucher.expires_at is not None and voucher.expires_at <= now
    ):
        return "expired"
    return None


def check_voucher(
    code: str,
    *,
    contact: Contact | None,
    order_total: Decimal | None = None,
    currency: str | None = None,
    now: datetime | None = None,
) -> Voucher:
    """Return the voucher if ``contact`` may use it on this order now; else refuse with why."""
    now = now or utcnow()
    voucher = find_voucher(code)
    if voucher is None:
        raise VoucherRefused("unknown")
    if (
        voucher.is_holder_only
        and voucher.contact_id is not None
        and (contact is None or contact.id != voucher.contact_id)
    ):
        raise VoucherRefused("not_yours")
    refusal = _status_refusal(voucher, now)
    if refusal:
        raise VoucherRefused(refusal)
    if currency and voucher.currency and currency.upper() != voucher.currency:
        raise VoucherRefused("wrong_currency")
    if (
        voucher.minimum_order is not None
        and order_total is not None
        and order_total < voucher.minimum_order
    ):
        raise VoucherRefused("below_minimum", minimum_order=str(voucher.minimum_order))
    return voucher


@dataclass(frozen=True, slots=True)
class Redeemed:
    redemption: VoucherRedemption
    voucher: Voucher
    #: False when the same order asked again and got the first redemption back.
    created: bool


def _live_redemption(voucher_id: int, order_ref: str) -> VoucherRedemption | None:
    return db.session.execute(
        select(VoucherRedemption)
        .outerjoin(RedemptionReversal, RedemptionReversal.redemption_id == VoucherRedemption.id)
        .where(
            VoucherRedemption.voucher_id == voucher_id,
            VoucherRedemption.order_ref == order_ref,
            RedemptionReversal.id.is_(None),
        )
    ).scalar_one_or_none()


def redeem_voucher(
    code: str,
    *,
    contact: Contact | None,
    order_total: Decimal,
    actor: Actor,
    order_ref: str | None = None,
    currency: str | None = None,
) -> Redeemed:
    """Use a voucher on an order, atomically: of any number of simultaneous attempts exactly
    one succeeds. The same ``order_ref`` asking again gets its redemption back."""
    if order_ref:
        known = find_voucher(code)
        if known is not None and known.status is VoucherStatus.REDEEMED:
            again = _live_redemption(known.id, order_ref)
            if again is not None:
                return Redeemed(again, known, created=False)
    now = utcnow()
    voucher = check_voucher(
        code, contact=contact, order_total=order_total, currency=currency, now=now
    )
    taken = changed_rows(
        update(Voucher)
        .where(
            Voucher.id == voucher.id,
            Voucher.status.in_(_USABLE),
            or_(Voucher.expires_at.is_(None), Voucher.expires_at > now),
        )
        .values(status=VoucherStatus.REDEEMED, redeemed_at=now)
    )
    db.session.refresh(voucher)
    if taken != 1:
        if order_ref and voucher.status is VoucherStatus.REDEEMED:
            again = _live_redemption(voucher.id, order_ref)
            if again is not None:
                return Redeemed(again, voucher, created=False)
        raise VoucherRefused(_status_refusal(voucher, now) or "already_used")
    redemption = VoucherRedemption(
        voucher_id=voucher.id,
        contact_id=contact.id if contact else voucher.contact_id,
        order_ref=order_ref,
        order_total=order_total,
        currency=(currency or voucher.currency or "").upper() or None,
        redeemed_at=now,
        actor_label=actor.label,
    )
    db.session.add(redemption)
    db.session.flush()
    audit.record(
        "voucher.redeemed",
        actor=actor,
        contact_id=redemption.contact_id,
        ticket_id=voucher.ticket_id,
        voucher_id=voucher.id,
        redemption_id=redemption.id,
        code=voucher.display_code,
        order_ref=order_ref,
        order_total=str(order_total),
    )
    events.on_commit(
        VoucherRedeemed(
            actor=actor,
            voucher_id=voucher.id,
            redemption_id=redemption.id,
            contact_id=redemption.contact_id,
        )
    )
    return Redeemed(redemption, voucher, created=True)


def reverse_redemption(
    redemption: VoucherRedemption, *, actor: Actor, reason: str = "refund"
) -> RedemptionReversal:
    """Undo a redemption after a refund with a reversal record; the voucher becomes usable
    again (or void, if its policy says so). Reversing twice returns the first reversal."""
    existing = db.session.execute(
        select(RedemptionReversal).where(RedemptionReversal.redemption_id == redemption.id)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    voucher = redemption.voucher
    now = utcnow()
    restore = voucher.restores_on_refund and (
        voucher.expires_at is None or voucher.expires_at > now
    )
    reversal = RedemptionReversal(
        redemption_id=redemption.id,
        reason=reason[:500],
        outcome="restored" if restore else "void",
        actor_label=actor.label,
    )
    try:
        with db.session.begin_nested():
            db.session.add(reversal)
            db.session.flush()
    except IntegrityError:
        return db.session.execute(
            select(RedemptionReversal).where(RedemptionReversal.redemption_id == redemption.id)
        ).scalar_one()
    back_to = VoucherStatus.SENT if voucher.sent_at else VoucherStatus.ISSUED
    values: dict[str, Any] = (
        {"status": back_to, "redeemed_at": None}
        if restore
        else {"status": VoucherStatus.VOID, "voided_at": now}
    )
    db.session.execute(
        update(Voucher)
        .where(Voucher.id == voucher.id, Voucher.status == VoucherStatus.REDEEMED)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(voucher)
    audit.record(
        "voucher.redemption_reversed",
        actor=actor,
        contact_id=redemption.contact_id,
        ticket_id=voucher.ticket_id,
        voucher_id=voucher.id,
        redemption_id=redemption.id,
        outcome=reversal.outcome,
        reason=reason,
    )
    events.on_commit(
        RedemptionReversed(
            actor=actor,
            voucher_id=voucher.id,
            redemption_id=redemption.id,
            contact_id=redemption.contact_id,
        )
    )
    return reversal


def void_voucher(voucher: Voucher, *, actor: Actor, reason: str = "") -> bool:
    """Cancel a voucher that has not been used."""
    moved = changed_rows(
        update(Voucher)
        .where(
            Voucher.id == voucher.id,
            Voucher.status.in_(
                (VoucherStatus.ISSUED, VoucherStatus.SENT, VoucherStatus.PENDING_APPROVAL)
            ),
        )
        .values(status=VoucherStatus.VOID, voided_at=utcnow())
    )
    db.session.refresh(voucher)
    if moved:
        audit.record(
            "voucher.voided",
            actor=actor,
            contact_id=voucher.contact_id,
            ticket_id=voucher.ticket_id,
            voucher_id=voucher.id,
            reason=reason,
        )
    return bool(moved)


def expire_vouchers(*, now: datetime | None = None, actor: Actor = SYSTEM) -> int:
    """Mark usable vouchers past their date as expired; return how many."""
    now = now or utcnow()
    due = db.session.execute(
        select(Voucher.id, Voucher.contact_id, Voucher.ticket_id)
        .where(Voucher.status.in_(_USABLE), Voucher.expires_at <= now)
        .limit(5000)
    ).all()
    expired = 0
    for voucher_id, contact_id, ticket_id in due:
        moved = changed_rows(
            update(Voucher)
            .where(Voucher.id == voucher_id, Voucher.status.in_(_USABLE), Voucher.expires_at <= now)
            .values(status=VoucherStatus.EXPIRED)
        )
        if moved and contact_id is not None:
            audit.record(
                "voucher.expired",
                actor=actor,
                contact_id=contact_id,
                ticket_id=ticket_id,
                voucher_id=voucher_id,
            )
        expired += moved
    return expired


# ------------------------------------------------------------------ bulk codes


def generate_vouchers(
    policy: IncentivePolicy | str,
    count: int,
    *,
    actor: Actor,
    batch: str | None = None,
    chunk: int | None = None,
) -> str:
    """Create ``count`` shareable codes under ``policy``; return the batch name.

    The rows are inserted in chunks by ``bulk.insert_codes``: uniqueness comes from
    the index on ``code``, and a collision is made up with a new code, never an error.
    """
    policy = get_policy(policy)
    terms = policy.terms()
    batch = batch or f"{policy.key}-{uuid.uuid4().hex[:10]}"
    now = utcnow()
    shared = {
        "policy_id": policy.id,
        "batch": batch,
        "kind": policy.kind,
        "value": policy.value,
        "currency": policy.currency,
        "minimum_order": policy.minimum_order,
        "is_holder_only": False,
        "restores_on_refund": policy.restores_on_refund,
        "status": VoucherStatus.ISSUED,
        "created_at": now,
        "issued_at": now,
        "expires_at": expiry(terms, now),
    }
    made = bulk.insert_codes(db.session.connection(), Voucher.__table__, shared, count, chunk=chunk)
    audit.record(
        "vouchers.generated",
        actor=actor,
        policy=policy.key,
        version=policy.version,
        batch=batch,
        count=made,
    )
    return batch


# ------------------------------------------------------------------ guessing


def _guess_settings() -> tuple[int, int]:
    config = current_app.config
    return (
        int(config.get("RAPPORT_VOUCHER_GUESS_LIMIT", 10)),
        int(config.get("RAPPORT_VOUCHER_GUESS_WINDOW", 600)),
    )


def _window(now: datetime, seconds: int) -> int:
    stamp = int(now.timestamp())
    return stamp - stamp % seconds


def guess_lockout(client: str, *, now: datetime | None = None) -> int | None:
    """Seconds ``client`` must wait after too many unknown codes, or None when it may try."""
    limit, seconds = _guess_settings()
    now = now or utcnow()
    start = _window(now, seconds)
    failures = db.session.scalar(
        select(CodeGuessWindow.failures).where(
            CodeGuessWindow.client == client[:80], CodeGuessWindow.window_start == start
        )
    )
    if failures is not None and failures >= limit:
        return max(1, start + seconds - int(now.timestamp()))
    return None


def record_failed_guess(client: str, *, now: datetime | None = None) -> int:
    """Count one unknown code for ``client`` in the current window; return the count."""
    _, seconds = _guess_settings()
    start = _window(now or utcnow(), seconds)
    table = CodeGuessWindow.__table__
    statement = (
        upsert_insert(table)
        .values(client=client[:80], window_start=start, failures=1)
        .on_conflict_do_update(
            index_elements=["client", "window_start"],
            set_={"failures": table.c.failures + 1},
        )
        .returning(table.c.failures)
    )
    return int(db.session.execute(statement).scalar_one())


def forget_old_guesses(*, now: datetime | None = None) -> int:
    """Drop guess windows that ended (housekeeping for the periodic job)."""
    _, seconds = _guess_settings()
    cutoff = _window(now or utcnow(), seconds) - seconds
    result = db.session.execute(
        CodeGuessWindow.__table__.delete().where(CodeGuessWindow.__table__.c.window_start < cutoff)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
