"""Contacts: search, read (with CRM figures), create, update, merge."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from channels.base import IdentityKind, SenderIdentity
from helpdesk.crm.summary import contact_summary
from helpdesk.extensions import db
from helpdesk.models import Company, Contact
from helpdesk.operations.contacts import (
    OperationError,
    add_identity,
    create_contact,
    find_contact,
    merge_contacts,
    update_contact,
)
from helpdesk.search import search_contacts

from .auth import current_actor, token_required
from .base import (
    ApiError,
    Fields,
    bp,
    decode_cursor,
    encode_cursor,
    invalid,
    json_body,
    not_found,
    page,
    page_size,
)
from .serializers import contact_json, money

CONTACT_FIELDS = ("name", "email", "phone", "locale", "notes", "attributes", "company_id")


def load_contact(contact_id: int) -> Contact:
    contact = db.session.get(Contact, contact_id)
    if contact is None:
        raise not_found("contact", contact_id)
    return contact


@bp.get("/contacts")
@token_required("contacts:read")
def list_contacts():
    size = page_size()
    q = (request.args.get("q") or "").strip()
    if q:
        # Search results are ranked, not paged: the best ``limit`` matches.
        ids = search_contacts(q, limit=size)
        found = {
            c.id: c
            for c in db.session.scalars(
                select(Contact).where(Contact.id.in_(ids)).options(selectinload(Contact.identities))
            )
        }
        contacts = [found[i] for i in ids if i in found]
        return jsonify({"data": [contact_json(c) for c in contacts], "next_cursor": None})
    query = select(Contact).where(Contact.merged_into_id.is_(None))
    after = decode_cursor(request.args.get("cursor"), int)
    if after is not None:
        query = query.where(Contact.id < after[0])
    query = query.options(selectinload(Contact.identities)).order_by(Contact.id.desc())
    contacts, next_cursor = page(
        list(db.session.scalars(query.limit(size + 1))), size, lambda c: encode_cursor(c.id)
    )
    return jsonify({"data": [contact_json(c) for c in contacts], "next_cursor": next_cursor})


@bp.get("/contacts/<int:contact_id>")
@token_required("contacts:read")
def show_contact(contact_id: int):
    contact = load_contact(contact_id)
    summary = contact_summary(contact)
    figures = {
        "orders": summary.orders,
        "total_spend": money(summary.total_spend),
        "average_order_value": money(summary.average_order_value),
        "last_order_at": summary.last_order_at.isoformat() if summary.last_order_at else None,
        "currency": summary.currency,
        "is_repeat_customer": summary.is_repeat_customer,
    }
    return jsonify({**contact_json(contact), "summary": figures})


@bp.post("/contacts")
@token_required("contacts:write")
def create():
    body = Fields(json_body(), known=CONTACT_FIELDS)
    identities = _identities(body)
    if not identities and not (body.string("name") or "").strip():
        raise invalid("email", "a contact needs a 'name', an 'email' or a 'phone'")
    for identity in identities:
        owner = find_contact(identity.kind, identity.value)
        if owner is not None:
            raise ApiError(
                409,
                f"{identity.value} already belongs to contact {owner.id}",
                "conflict",
                field=identity.kind.value,
                contact_id=owner.id,
            )
    actor = current_actor()
    attributes = body.mapping("attributes")
    contact = create_contact(
        actor=actor,
        name=body.string("name", max_length=200) or "",
        identities=identities,
        locale=body.string("locale", max_length=16),
    )
    _update(contact, body, attributes)
    db.session.commit()
    return jsonify(contact_json(contact)), 201


@bp.patch("/contacts/<int:contact_id>")
@token_required("contacts:write")
def update(contact_id: int):
    contact = load_contact(contact_id)
    body = Fields(json_body(), known=CONTACT_FIELDS)
    identities = _identities(body)
    _update(contact, body, body.mapping("attributes"), name=body.string("name", max_length=200))
    for identity in identities:
        try:
            add_identity(contact, identity, actor=current_actor())
        except OperationError as exc:
            raise ApiError(409, str(exc), "conflict", field=identity.kind.value) from None
    db.session.commit()
    return jsonify(contact_json(contact))


@bp.post("/contacts/<int:contact_id>/merge")
@token_required("contacts:write")
def merge(contact_id: int):
    source = load_contact(contact_id)
    body = Fields(json_body(), known=("into",))
    into = body.integer("into", required=True)
    target = db.session.get(Contact, into)
    if target is None:
        raise invalid("into", f"contact {into} does not exist")
    if target.merged_into_id is not None:
        raise ApiError(409, f"contact {into} was itself merged away", "conflict", field="into")
    try:
        merge_contacts(source, target, actor=current_actor())
    except OperationError as exc:
        raise ApiError(409, str(exc), "conflict", field="into") from None
    db.session.commit()
    return jsonify(contact_json(target))


def _identities(body: Fields) -> list[SenderIdentity]:
    identities = []
    if email := body.email("email"):
        identities.append(SenderIdentity(IdentityKind.EMAIL, email))
    if phone := body.phone("phone"):
        identities.append(SenderIdentity(IdentityKind.PHONE, phone))
    return identities


def _update(
    contact: Contact, body: Fields, attributes: dict[str, Any] | None, name: str | None = None
) -> None:
    changes: dict[str, Any] = {}
    if body.has("company_id"):
        company_id = body.integer("company_id", nullable=True)
        if company_id is not None and db.session.get(Company, company_id) is None:
            raise invalid("company_id", f"company {company_id} does not exist")
        changes["company_id"] = company_id
    try:
        update_contact(
            contact,
            actor=current_actor(),
            name=name,
            locale=body.string("locale", max_length=16),
            notes=body.string("notes", max_length=100_000),
            attributes=attributes,
            **changes,
        )
    except OperationError as exc:
        raise invalid("attributes", str(exc)) from None
