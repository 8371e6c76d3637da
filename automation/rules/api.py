"""``POST /api/v1/activities``: a shop reports something a customer did, for activity rules."""

from __future__ import annotations

import json

from flask import Blueprint, jsonify

from channels.base import IdentityKind, SenderIdentity
from helpdesk.api.auth import current_actor, current_token, token_required
from helpdesk.api.base import ApiError, Fields, invalid, json_body
from helpdesk.errors import error_response
from helpdesk.extensions import db
from helpdesk.operations.contacts import find_or_create_contact

from .activities import ACTIVITY_TYPE, report_activity

bp = Blueprint("automation_api", __name__, url_prefix="/api/v1")

#: Until the core has an ``activities:write`` scope, reporting activities needs contacts:write.
SCOPE = "activities:write"
MAX_DATA_BYTES = 16 * 1024


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    db.session.rollback()
    return error_response(exc.status, exc.message, exc.code, **exc.extra)


@bp.post("/activities")
@token_required(SCOPE)
def post_activity():
    body = Fields(json_body(), known=("contact", "type", "data", "external_id"))
    who = Fields(
        body.mapping("contact", required=True) or {}, "contact.", ("email", "phone", "name")
    )
    email = who.email("email")
    phone = who.phone("phone")
    name = who.string("name", max_length=200)
    if not email and not phone:
        raise invalid("contact", "'contact' needs an 'email' or a 'phone'")
    activity_type = (body.string("type", required=True, max_length=64) or "").strip()
    if not ACTIVITY_TYPE.match(activity_type):
        raise invalid("type", "'type' is lower-case letters, digits and _ (e.g. review_approved)")
    data = body.mapping("data") or {}
    if len(json.dumps(data)) > MAX_DATA_BYTES:
        raise invalid("data", f"'data' is larger than {MAX_DATA_BYTES} bytes")
    external_id = body.string("external_id", max_length=200)
    actor = current_actor()
    identity = (
        SenderIdentity(IdentityKind.EMAIL, email, name)
        if email
        else SenderIdentity(IdentityKind.PHONE, phone or "", name)
    )
    contact, _ = find_or_create_contact(identity, actor=actor)
    db.session.flush()
    activity, created = report_activity(
        contact,
        activity_type,
        actor=actor,
        data=data,
        external_id=external_id.strip() if external_id else None,
        api_token_id=current_token().id,
    )
    db.session.commit()
    payload = {
        "id": activity.id,
        "contact_id": activity.contact_id,
        "type": activity.type,
        "data": activity.data,
        "external_id": activity.external_id,
        "created_at": activity.created_at.isoformat(),
        "created": created,
    }
    return jsonify(payload), 201 if created else 200
