"""The approval queue for leads, goodwill vouchers from the sidebar, the contact panel data."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from helpdesk.actors import Actor
from helpdesk.auth.access import role_required
from helpdesk.extensions import db
from helpdesk.models import Contact, Role, Ticket

from .models import IncentiveGrant, Voucher, VoucherStatus
from .operations import (
    IncentiveError,
    approve_grant,
    goodwill_limit,
    issue_goodwill_voucher,
    pending_grants,
    reject_grant,
)

bp = Blueprint("incentives", __name__, url_prefix="/incentives")


def _actor() -> Actor:
    return Actor.for_user(current_user)


@bp.route("/approvals")
@role_required(Role.AGENT)
def approvals():
    grants = pending_grants()
    return render_template(
        "incentives/approvals.html", grants=grants, can_decide=current_user.can(Role.ADMIN)
    )


@bp.route("/approvals/<int:grant_id>", methods=["POST"])
@role_required(Role.ADMIN)
def decide(grant_id: int):
    grant = db.session.get(IncentiveGrant, grant_id)
    if grant is None:
        abort(404)
    decision = request.form.get("decision")
    note = (request.form.get("note") or "").strip()
    try:
        if decision == "approve":
            approve_grant(grant, actor=_actor(), note=note)
            message = _("Grant #%(id)s approved; the customer can use it now.", id=grant.id)
        elif decision == "reject":
            reject_grant(grant, actor=_actor(), note=note)
            message = _("Grant #%(id)s rejected.", id=grant.id)
        else:
            abort(400, "Choose approve or reject.")
        db.session.commit()
        flash(message, "success")
    except IncentiveError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    return redirect(url_for("incentives.approvals"))


@bp.route("/contacts/<int:contact_id>/goodwill", methods=["POST"])
@role_required(Role.AGENT)
def goodwill(contact_id: int):
    contact = db.session.get(Contact, contact_id)
    if contact is None:
        abort(404)
    ticket_id = request.form.get("ticket_id", type=int)
    ticket = db.session.get(Ticket, ticket_id) if ticket_id else None
    back = request.form.get("next") or request.referrer or url_for("incentives.approvals")
    if not back.startswith("/"):
        back = url_for("incentives.approvals")
    try:
        amount = Decimal(request.form.get("amount", ""))
    except InvalidOperation:
        flash(_("Enter the amount as a number."), "error")
        return redirect(back)
    try:
        result = issue_goodwill_voucher(
            contact,
            actor=_actor(),
            amount=amount,
            ticket=ticket,
            reason=request.form.get("reason") or "goodwill",
        )
        db.session.commit()
    except IncentiveError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(back)
    if result.status == "pending_approval":
        flash(_("Above your limit: the voucher waits for a lead's approval."), "info")
    else:
        code = result.voucher.display_code if result.voucher else ""
        flash(_("Voucher %(code)s issued.", code=code), "success")
    return redirect(back)


@dataclass(frozen=True, slots=True)
class ContactIncentives:
    """What the contact panel shows."""

    vouchers: list[Voucher]
    points_available: int
    points_pending: int
    tier: str | None
    grace_until: Any
    goodwill_limit: Decimal | None


def contact_incentives(contact: Contact, limit: int = 8) -> ContactIncentives:
    """Vouchers (newest first), points and tier for the CRM sidebar."""
    from automation.loyalty.models import ContactTier, PointsBalance

    vouchers = list(
        db.session.scalars(
            select(Voucher)
            .options(selectinload(Voucher.policy))
            .where(Voucher.contact_id == contact.id)
            .order_by(Voucher.created_at.desc(), Voucher.id.desc())
            .limit(limit)
        )
    )
    balance = db.session.get(PointsBalance, contact.id)
    tier = db.session.get(ContactTier, contact.id)
    limit_amount = None
    if getattr(current_user, "is_authenticated", False):
        limit_amount = goodwill_limit(Actor.for_user(current_user))
    return ContactIncentives(
        vouchers=vouchers,
        points_available=balance.available if balance else 0,
        points_pending=balance.pending if balance else 0,
        tier=tier.tier_key if tier else None,
        grace_until=tier.grace_until if tier else None,
        goodwill_limit=limit_amount,
    )


__all__ = ["VoucherStatus", "bp", "contact_incentives"]
