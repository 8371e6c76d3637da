"""``POST /api/v1/messages``: an integration starts or continues a conversation."""

from __future__ import annotations

from flask import jsonify

from channels.base import IdentityKind, InboundMessage, SenderIdentity, ThreadingHints
from helpdesk.extensions import db
from helpdesk.ingest import ingest_message

from .auth import current_token, token_required
from .base import ApiError, Fields, bp, json_body

MESSAGE_FIELDS = (
    "external_id",
    "contact",
    "text",
    "subject",
    "html",
    "conversation_id",
    "ticket_id",
)
CONTACT_FIELDS = ("email", "phone", "name", "id")


@bp.post("/messages")
@token_required("messages:write")
def create_message():
    body = Fields(json_body(), known=MESSAGE_FIELDS)
    external_id = body.string("external_id", required=True, max_length=500)
    contact = Fields(body.mapping("contact", required=True) or {}, "contact.", CONTACT_FIELDS)
    text = body.string("text", max_length=100_000) or ""
    html = body.string("html", max_length=500_000)
    if not text.strip() and not (html or "").strip():
        raise ApiError(422, "'text' is required", "invalid", field="text")
    msg = InboundMessage(
        channel="api",
        external_id=str(external_id).strip(),
        sender=_sender(contact),
        text=text,
        subject=body.string("subject", max_length=500),
        html=html,
        threading=ThreadingHints(
            conversation_id=body.string("conversation_id", max_length=200, empty=False),
            ticket_id=body.integer("ticket_id"),
        ),
        metadata={"api_token_id": current_token().id},
    )
    result = ingest_message(msg)
    db.session.commit()
    payload = {
        "duplicate": result.is_duplicate,
        "ticket_id": result.ticket.id,
        "message_id": result.message_id,
        "contact_id": result.message.contact_id,
        "created_ticket": result.created_ticket,
        "created_contact": result.created_contact,
    }
    return jsonify(payload), 200 if result.is_duplicate else 201


def _sender(contact: Fields) -> SenderIdentity:
    """Who wrote: email beats phone beats the integration's own id for the person."""
    name = contact.string("name", max_length=200)
    email = contact.email("email")
    if email:
        return SenderIdentity(IdentityKind.EMAIL, email, name)
    phone = contact.phone("phone")
    if phone:
        return SenderIdentity(IdentityKind.PHONE, phone, name)
    if isinstance(contact.data.get("id"), int) and not isinstance(contact.data["id"], bool):
        contact.data["id"] = str(contact.data["id"])
    ident = contact.string("id", max_length=300, empty=False)
    if ident:
        return SenderIdentity(IdentityKind.API, ident.strip(), name)
    raise ApiError(
        422, "'contact' needs an 'email', a 'phone' or an 'id'", "invalid", field="contact"
    )
