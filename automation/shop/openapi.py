"""OpenAPI descriptions of the shop API (/api/v1/shop) and the activities endpoint."""

from __future__ import annotations

from typing import Any

from helpdesk.api.openapi import describe

_STR = {"type": "string"}
_MONEY_IN = {"type": ["string", "number"], "description": "Decimal amount, e.g. 49.90"}
_REASONS = [
    "unknown",
    "expired",
    "not_yours",
    "already_used",
    "below_minimum",
    "void",
    "pending_approval",
]


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _body(ref: str, required: bool = True) -> dict[str, Any]:
    return {
        "required": required,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


def _id(name: str, what: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}'s id.",
        "schema": {"type": "integer"},
    }


SCHEMAS: dict[str, Any] = {
    "VoucherCheck": {
        "type": "object",
        "required": ["code", "cart_total"],
        "properties": {
            "code": {
                **_STR,
                "description": "As the customer typed it; case, O/0, I/L/1 and hyphens are normalised.",
            },
            "contact_id": {"type": "integer"},
            "email": {
                **_STR,
                "description": "Instead of contact_id; holder-only codes need one of them.",
            },
            "cart_total": _MONEY_IN,
            "currency": {**_STR, "description": "ISO 4217 code."},
            "customer_ip": {
                **_STR,
                "description": "The shopper's address, so guessing is limited per shopper.",
            },
        },
    },
    "VoucherRedeem": {
        "type": "object",
        "required": ["code", "order_total"],
        "properties": {
            "code": _STR,
            "contact_id": {"type": "integer"},
            "email": _STR,
            "order_total": _MONEY_IN,
            "currency": _STR,
            "order_id": {
                **_STR,
                "description": "The shop's order id; a repeat with the same id returns the first redemption.",
            },
            "customer_ip": _STR,
        },
    },
    "Voucher": {
        "type": "object",
        "properties": {
            "code": {**_STR, "description": "Grouped for reading: XXXX-XXXX-XXXX."},
            "kind": _STR,
            "value": {"type": ["string", "null"]},
            "currency": {"type": ["string", "null"]},
            "status": _STR,
            "expires_at": {"type": ["string", "null"], "format": "date-time"},
            "minimum_order": {"type": ["string", "null"]},
        },
        "additionalProperties": True,
    },
    "VoucherValidation": {
        "type": "object",
        "properties": {
            "valid": {"type": "boolean"},
            "voucher": {"$ref": "#/components/schemas/Voucher"},
            "discount": {"type": ["string", "null"]},
        },
    },
    "Redemption": {
        "type": "object",
        "additionalProperties": True,
        "properties": {"id": {"type": "integer"}, "created": {"type": "boolean"}, "outcome": _STR},
    },
    "RedemptionList": {
        "type": "object",
        "properties": {
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Redemption"}}
        },
    },
    "ReverseRequest": {"type": "object", "properties": {"reason": _STR}},
    "ReverseByOrder": {
        "type": "object",
        "required": ["order_id"],
        "properties": {"order_id": _STR, "reason": _STR},
    },
    "ContactRewards": {
        "type": "object",
        "properties": {
            "contact_id": {"type": "integer"},
            "points": {
                "type": "object",
                "properties": {"available": {"type": "integer"}, "pending": {"type": "integer"}},
            },
            "tier": {"type": "object", "additionalProperties": True},
            "vouchers": {"type": "array", "items": {"$ref": "#/components/schemas/Voucher"}},
        },
    },
    "ReferralCodeRequest": {"type": "object", "properties": {"ip": _STR, "user_agent": _STR}},
    "ReferralCode": {
        "type": "object",
        "properties": {"contact_id": {"type": "integer"}, "code": _STR},
    },
    "ReferralCreate": {
        "type": "object",
        "required": ["code"],
        "properties": {
            "code": _STR,
            "contact_id": {"type": "integer"},
            "email": _STR,
            "ip": _STR,
            "user_agent": _STR,
        },
    },
    "Referral": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "referrer_id": {"type": "integer"},
            "referee_id": {"type": "integer"},
            "status": _STR,
            "block_reason": {"type": ["string", "null"]},
        },
    },
    "ActivityCreate": {
        "type": "object",
        "required": ["contact", "type"],
        "properties": {
            "contact": {
                "type": "object",
                "properties": {"email": _STR, "phone": _STR, "name": _STR},
            },
            "type": {
                **_STR,
                "pattern": "^[a-z0-9_]+$",
                "examples": ["review_approved", "social_post_shared", "store_visit"],
            },
            "data": {"type": "object"},
            "external_id": {**_STR, "description": "Makes the report idempotent."},
        },
    },
    "Activity": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "contact_id": {"type": "integer"},
            "type": _STR,
            "data": {"type": "object"},
            "external_id": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "created": {"type": "boolean"},
        },
    },
}

# Why a code cannot be used, by status; `error.code` (and `error.reason`) carry the reason.
_REFUSAL_STATUS = {
    403: "not_yours (holder-only code of another contact), or the token lacks the scope",
    404: "unknown",
    409: "already_used, pending_approval",
    410: "expired, void",
    422: "below_minimum, wrong_currency, or an invalid field",
}
_REFUSALS = {
    str(status): {
        "description": f"Refused: {reasons}.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for status, reasons in _REFUSAL_STATUS.items()
}


OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/shop/vouchers/validate"): {
        "operationId": "validateVoucher",
        "summary": "Check a code for a contact and cart total, without using it.",
        "description": "Unknown codes count as guesses; too many from one client answer 429 with Retry-After.",
        "tags": ["shop"],
        "requestBody": _body("VoucherCheck"),
        "responses": {
            "200": _json("VoucherValidation", "The code is usable; the discount it gives."),
            **_REFUSALS,
            **_errors(400, 401, 429),
        },
    },
    ("post", "/shop/vouchers/redeem"): {
        "operationId": "redeemVoucher",
        "summary": "Use a code on an order, atomically: a single-use code succeeds once.",
        "tags": ["shop"],
        "requestBody": _body("VoucherRedeem"),
        "responses": {
            "201": _json("Redemption", "Redeemed."),
            "200": _json("Redemption", "This order redeemed it already (idempotent)."),
            **_REFUSALS,
            **_errors(400, 401, 429),
        },
    },
    ("post", "/shop/redemptions/{redemption_id}/reverse"): {
        "operationId": "reverseRedemption",
        "summary": "Reverse a redemption (refund); the voucher becomes usable again or void per its policy.",
        "tags": ["shop"],
        "parameters": [_id("redemption_id", "redemption")],
        "requestBody": _body("ReverseRequest", required=False),
        "responses": {"200": _json("Redemption", "Reversed."), **_errors(401, 403, 404, 409, 422)},
    },
    ("post", "/shop/redemptions/reverse"): {
        "operationId": "reverseRedemptionsByOrder",
        "summary": "Reverse everything redeemed on a refunded order, by the shop's order id.",
        "tags": ["shop"],
        "requestBody": _body("ReverseByOrder"),
        "responses": {
            "200": _json("RedemptionList", "Reversed."),
            **_errors(400, 401, 403, 404, 422),
        },
    },
    ("get", "/shop/contacts/{contact_id}"): {
        "operationId": "getContactRewards",
        "summary": "A contact's points, tier and vouchers.",
        "tags": ["shop"],
        "parameters": [_id("contact_id", "contact")],
        "responses": {
            "200": _json("ContactRewards", "Balance, tier and vouchers."),
            **_errors(401, 403, 404),
        },
    },
    ("post", "/shop/contacts/{contact_id}/referral-code"): {
        "operationId": "getReferralCode",
        "summary": "The contact's refer-a-friend code, created on first request.",
        "tags": ["shop"],
        "parameters": [_id("contact_id", "contact")],
        "requestBody": _body("ReferralCodeRequest", required=False),
        "responses": {"200": _json("ReferralCode", "The code."), **_errors(401, 403, 404, 422)},
    },
    ("post", "/shop/referrals"): {
        "operationId": "recordReferral",
        "summary": "A new customer signed up with a referral code; fraud checks record why one is blocked.",
        "tags": ["shop"],
        "requestBody": _body("ReferralCreate"),
        "responses": {
            "201": _json("Referral", "Recorded (or blocked, with the reason)."),
            **_errors(400, 401, 403, 404, 409, 422),
        },
    },
    ("post", "/activities"): {
        "operationId": "reportActivity",
        "summary": "Report something a customer did in the shop (review approved, post shared, store visit) for rules to act on.",
        "tags": ["activities"],
        "requestBody": _body("ActivityCreate"),
        "responses": {
            "201": _json("Activity", "Recorded."),
            "200": _json("Activity", "Recorded before (same external_id)."),
            **_errors(400, 401, 403, 422),
        },
    },
}


def register() -> None:
    """Add these operations to the API's OpenAPI document."""
    describe(OPERATIONS, SCHEMAS, tags=("shop", "activities"))
