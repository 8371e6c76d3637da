"""Orders a shop reports: record idempotently by its own order id, list, read."""

from __future__ import annotations

from datetime import datetime

from flask import jsonify, request
from sqlalchemy import and_, or_, select

from helpdesk.extensions import db
from helpdesk.models import Contact, Order, OrderStatus
from helpdesk.operations.orders import record_order

from .auth import current_actor, token_required
from .base import (
    Fields,
    bp,
    decode_cursor,
    encode_cursor,
    invalid,
    json_body,
    not_found,
    page,
    page_size,
    query_int,
)
from .serializers import order_json

ORDER_FIELDS = (
    "external_id",
    "contact",
    "contact_id",
    "total",
    "refunded_total",
    "currency",
    "status",
    "placed_at",
    "items",
)


@bp.post("/orders")
@token_required("orders:write")
def post_order():
    body = Fields(json_body(), known=ORDER_FIELDS)
    external_id = body.string("external_id", required=True, max_length=200) or ""
    total = body.decimal("total", required=True)
    currency = body.string("currency", required=True, max_length=8) or ""
    contact = None
    email = phone = name = None
    if body.has("contact_id"):
        contact_id = body.integer("contact_id", required=True)
        contact = db.session.get(Contact, contact_id)
        if contact is None:
            raise invalid("contact_id", f"contact {contact_id} does not exist")
    else:
        given = body.mapping("contact", required=True) or {}
        who = Fields(given, "contact.", ("email", "phone", "name"))
        email = who.email("email")
        phone = who.phone("phone")
        name = who.string("name", max_length=200)
        if not email and not phone:
            raise invalid("contact", "'contact' needs an 'email' or a 'phone'")
    assert total is not None
    result = record_order(
        actor=current_actor(),
        external_id=external_id,
        total=total,
        currency=currency,
        status=body.choice("status", OrderStatus),
        placed_at=body.timestamp("placed_at"),
        refunded_total=body.decimal("refunded_total"),
        items=body.objects("items"),
        contact=contact,
        email=email,
        phone=phone,
        name=name,
    )
    db.session.commit()
    payload = {**order_json(result.order), "created": result.created, "changed": result.changed}
    return jsonify(payload), 201 if result.created else 200


@bp.get("/orders")
@token_required("orders:read")
def list_orders():
    size = page_size()
    query = select(Order)
    contact_id = query_int("contact_id")
    if contact_id is not None:
        query = query.where(Order.contact_id == contact_id)
    if status := request.args.get("status"):
        try:
            query = query.where(Order.status == OrderStatus(status))
        except ValueError:
            allowed = ", ".join(s.value for s in OrderStatus)
            raise invalid("status", f"'status' must be one of: {allowed}") from None
    if external_id := request.args.get("external_id"):
        query = query.where(Order.external_id == external_id)
    after = decode_cursor(request.args.get("cursor"), datetime, int)
    if after is not None:
        placed, last_id = after
        query = query.where(
            or_(Order.placed_at < placed, and_(Order.placed_at == placed, Order.id < last_id))
        )
    query = query.order_by(Order.placed_at.desc(), Order.id.desc()).limit(size + 1)
    orders, next_cursor = page(
        list(db.session.scalars(query)), size, lambda o: encode_cursor(o.placed_at, o.id)
    )
    return jsonify({"data": [order_json(o) for o in orders], "next_cursor": next_cursor})


@bp.get("/orders/<int:order_id>")
@token_required("orders:read")
def show_order(order_id: int):
    order = db.session.get(Order, order_id)
    if order is None:
        raise not_found("order", order_id)
    return jsonify(order_json(order))
