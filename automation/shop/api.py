"""The shop API under /api/v1/shop: validate, redeem and reverse vouchers; read loyalty.

Token-authenticated like the rest of /api/v1 (``helpdesk.api.auth``). Every
refusal is ``{"error": {"code": <reason>, ...}}`` with a reason a shop can act on:
unknown, expired, not_yours, already_used, below_minimum, void, pending_approval.
Unknown codes count against the caller; too many in a window answer 429 with
Retry-After, across processes (the counter is a table).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import select

from automation.incentives.models import Voucher, VoucherRedemption, VoucherStatus
from automation.incentives.operations import (
    VoucherRefused,
    check_voucher,
    guess_lockout,
    record_failed_guess,
    redeem_voucher,
    reverse_redemption,
)
from automation.loyalty.models import ContactTier
from automation.loyalty.operations import (
    balance,
    record_referral,
    referral_code_for,
)
from channels.base import IdentityKind
from helpdesk.api.auth import (
    current_actor,
    rate_limit,
    rate_limit_key,
    token_required,
)
from helpdesk.api.base import ApiError, Fields, invalid, json_body, not_found
from helpdesk.errors import error_response
from helpdesk.extensions import db, limiter
from helpdesk.models import Contact
from helpdesk.operations.contacts import OperationError, find_contact, live_contact

bp = Blueprint("shop_api", __name__, url_prefix="/api/v1/shop")
limiter.shared_limit(rate_limit, scope="api", key_func=rate_limit_key)(bp)

#: The scopes this API uses (all of them in ``helpdesk.operations.users.SCOPES``).
SHOP_SCOPES = ("vouchers:read", "vouchers:write", "loyalty:read", "loyalty:write")


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    db.session.rollback()
    response, status = error_response(exc.status, exc.message, exc.code, **exc.extra)
    if "retry_after" in exc.extra:
        response.headers["Retry-After"] = str(exc.extra["retry_after"])
    return response, status


@bp.errorhandler(VoucherRefused)
def _refused(exc: VoucherRefused):
    db.session.rollback()
    return error_response(exc.status, str(exc), exc.reason, reason=exc.reason, **exc.extra)


@bp.errorhandler(OperationError)
def _operation_error(exc: OperationError):
    db.session.rollback()
    code = getattr(exc, "code", None)
    return error_response(getattr(exc, "status", 422), str(exc), code)


# ------------------------------------------------------------------ helpers


def _contact(body: Fields, *, required: bool) -> Contact | None:
    if body.has("contact_id"):
        contact_id = body.integer("contact_id", required=True)
        contact = db.session.get(Contact, contact_id)
        if contact is None:
            raise invalid("contact_id", f"contact {contact_id} does not exist")
        return live_contact(contact)
    email = body.email("email")
    if email:
        contact = find_contact(IdentityKind.EMAIL, email)
        if contact is None and required:
            raise invalid("email", f"no contact has the address {email}")
        return live_contact(contact) if contact else None
    if required:
        raise invalid("contact_id", "'contact_id' or 'email' is required")
    return None


def _amount(body: Fields, key: str) -> Decimal:
    value = body.decimal(key, required=True)
    assert value is not None
    if value < 0:
        raise invalid(key, f"'{key}' must not be negative")
    return value


def _client(body: Fields) -> str:
    """Who is guessing: the token (or address) plus the shopper's address if the shop says."""
    shopper = body.string("customer_ip", max_length=64) or ""
    return hashlib.sha256(f"{rate_limit_key()}|{shopper}".encode()).hexdigest()[:40]


def _guard(client: str) -> None:
    wait = guess_lockout(client)
    if wait is not None:
        raise ApiError(
            429,
            "Too many unknown codes; try again later.",
            "too_many_guesses",
            retry_after=wait,
        )


@contextmanager
def _counting_guesses(client: str) -> Iterator[None]:
    """Count an unknown code against ``client`` (committed even though the request fails)."""
    try:
        yield
    except VoucherRefused as refused:
        if refused.reason == "unknown":
            db.session.rollback()
            record_failed_guess(client)
            db.session.commit()
        raise


def voucher_json(v: Voucher) -> dict[str, Any]:
    return {
        "id": v.id,
        "code": v.display_code,
        "kind": v.kind.value,
        "value": str(v.value),
        "currency": v.currency,
        "minimum_order": str(v.minimum_order) if v.minimum_order is not None else None,
        "status": v.status.value,
        "holder_only": v.is_holder_only,
        "contact_id": v.contact_id,
        "issued_at": v.issued_at.isoformat() if v.issued_at else None,
        "expires_at": v.expires_at.isoformat() if v.expires_at else None,
    }


def discount_for(v: Voucher, total: Decimal) -> Decimal | None:
    """The money off ``total`` (None for free shipping or a free item: the shop prices those)."""
    if v.kind.value == "percentage":
        return (total * Decimal(v.value) / 100).quantize(Decimal("0.01"))
    if v.kind.value in ("fixed", "store_credit"):
        return min(Decimal(v.value), total).quantize(Decimal("0.01"))
    return None


def _redemption_json(r: VoucherRedemption) -> dict[str, Any]:
    return {
        "id": r.id,
        "voucher": voucher_json(r.voucher),
        "order_id": r.order_ref,
        "order_total": str(r.order_total),
        "currency": r.currency,
        "redeemed_at": r.redeemed_at.isoformat(),
        "reversed": r.reversal is not None,
        "discount": _str(discount_for(r.voucher, r.order_total)),
    }


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


# ------------------------------------------------------------------ vouchers


@bp.post("/vouchers/validate")
@token_required("vouchers:read")
def validate():
    body = Fields(
        json_body(), known=("code", "contact_id", "email", "cart_total", "currency", "customer_ip")
    )
    client = _client(body)
    _guard(client)
    code = body.string("code", required=True, max_length=64) or ""
    total = _amount(body, "cart_total")
    contact = _contact(body, required=False)
    currency = body.string("currency", max_length=3)
    with _counting_guesses(client):
        voucher = check_voucher(code, contact=contact, order_total=total, currency=currency)
    return jsonify(
        {
            "valid": True,
            "voucher": voucher_json(voucher),
            "discount": _str(discount_for(voucher, total)),
        }
    )


@bp.post("/vouchers/redeem")
@token_required("vouchers:write")
def redeem():
    body = Fields(
        json_body(),
        known=("code", "contact_id", "email", "order_total", "currency", "order_id", "customer_ip"),
    )
    client = _client(body)
    _guard(client)
    code = body.string("code", required=True, max_length=64) or ""
    total = _amount(body, "order_total")
    contact = _contact(body, required=False)
    order_ref = body.string("order_id", max_length=200)
    currency = body.string("currency", max_length=3)
    with _counting_guesses(client):
        result = redeem_voucher(
            code,
            contact=contact,
            order_total=total,
            actor=current_actor(),
            order_ref=order_ref,
            currency=currency,
        )
    db.session.commit()
    return jsonify({**_redemption_json(result.redemption), "created": result.created}), (
        201 if result.created else 200
    )


@bp.post("/redemptions/<int:redemption_id>/reverse")
@token_required("vouchers:write")
def reverse(redemption_id: int):
    body = Fields(json_body() if _has_body() else {}, known=("reason",))
    redemption = db.session.get(VoucherRedemption, redemption_id)
    if redemption is None:
        raise not_found("redemption", redemption_id)
    reversal = reverse_redemption(
        redemption, actor=current_actor(), reason=body.string("reason", max_length=500) or "refund"
    )
    db.session.commit()
    db.session.refresh(redemption)
    return jsonify({**_redemption_json(redemption), "outcome": reversal.outcome})


@bp.post("/redemptions/reverse")
@token_required("vouchers:write")
def reverse_by_order():
    """Reverse what was redeemed on a refunded order, by the shop's order id."""
    body = Fields(json_body(), known=("order_id", "reason"))
    order_ref = body.string("order_id", required=True, max_length=200)
    redemptions = db.session.scalars(
        select(VoucherRedemption).where(VoucherRedemption.order_ref == order_ref)
    ).all()
    if not redemptions:
        raise not_found("redemption for order", order_ref)
    reason = body.string("reason", max_length=500) or "refund"
    out = []
    for redemption in redemptions:
        reversal = reverse_redemption(redemption, actor=current_actor(), reason=reason)
        out.append((redemption, reversal.outcome))
    db.session.commit()
    return jsonify({"data": [{**_redemption_json(r), "outcome": outcome} for r, outcome in out]})


def _has_body() -> bool:
    from flask import request

    return bool(request.get_data(cache=True).strip())


# ------------------------------------------------------------------ loyalty


def _contact_or_404(contact_id: int) -> Contact:
    contact = db.session.get(Contact, contact_id)
    if contact is None:
        raise not_found("contact", contact_id)
    return live_contact(contact)


@bp.get("/contacts/<int:contact_id>")
@token_required("loyalty:read")
def contact_rewards(contact_id: int):
    """A contact's points, tier and vouchers."""
    contact = _contact_or_404(contact_id)
    points = balance(contact)
    tier = db.session.get(ContactTier, contact.id)
    vouchers = db.session.scalars(
        select(Voucher)
        .where(Voucher.contact_id == contact.id, Voucher.status != VoucherStatus.PENDING_APPROVAL)
        .order_by(Voucher.created_at.desc(), Voucher.id.desc())
        .limit(100)
    ).all()
    return jsonify(
        {
            "contact_id": contact.id,
            "points": {"available": points.available, "pending": points.pending},
            "tier": {
                "key": tier.tier_key if tier else "bronze",
                "since": tier.since.isoformat() if tier else None,
                "grace_until": tier.grace_until.isoformat() if tier and tier.grace_until else None,
            },
            "vouchers": [voucher_json(v) for v in vouchers],
        }
    )


@bp.post("/contacts/<int:contact_id>/referral-code")
@token_required("loyalty:write")
def referral_code(contact_id: int):
    """The contact's refer-a-friend code (created on first ask, with where it was shared)."""
    body = Fields(json_body() if _has_body() else {}, known=("ip", "user_agent"))
    contact = _contact_or_404(contact_id)
    code = referral_code_for(
        contact,
        actor=current_actor(),
        ip=body.string("ip", max_length=64),
        user_agent=body.string("user_agent", max_length=400),
    )
    db.session.commit()
    return jsonify({"contact_id": contact.id, "code": code.code})


@bp.post("/referrals")
@token_required("loyalty:write")
def referrals():
    """A new customer signed up with a referral code."""
    body = Fields(json_body(), known=("code", "contact_id", "email", "ip", "user_agent"))
    referee = _contact(body, required=True)
    assert referee is not None
    referral = record_referral(
        body.string("code", required=True, max_length=64) or "",
        referee,
        actor=current_actor(),
        ip=body.string("ip", max_length=64),
        user_agent=body.string("user_agent", max_length=400),
    )
    db.session.commit()
    return jsonify(
        {
            "id": referral.id,
            "referrer_id": referral.referrer_id,
            "referee_id": referral.referee_id,
            "status": referral.status.value,
            "block_reason": referral.block_reason,
        }
    ), 201
