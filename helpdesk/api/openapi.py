"""``GET /api/v1/openapi.json``: an OpenAPI 3.1 description of every endpoint.

Operations are described here by hand; the scope each one needs is read from
its view, so the document cannot drift from what the code enforces. A test
checks that every route under /api/v1 is described and nothing else is.
"""

from __future__ import annotations

import re
from typing import Any

from flask import current_app, jsonify

from helpdesk.auth.access import public
from helpdesk.models import OrderStatus, Priority, TicketStatus
from helpdesk.operations.users import SCOPES

from .auth import is_token_view, scope_of
from .base import MAX_PAGE_SIZE, bp

PREFIX = "/api/v1"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(name: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(name)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


def _path_id(name: str, what: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}'s id.",
        "schema": {"type": "integer"},
    }


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _list_of(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": _ref(name)},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
        },
    }


_PAGING = [
    _query("cursor", "Opaque cursor from the previous page's `next_cursor`."),
    _query(
        "limit",
        f"Page size, 1 to {MAX_PAGE_SIZE} (default 25).",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
    ),
]
_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_MONEY = {"type": "string", "pattern": r"^\d+\.\d{2}$", "examples": ["49.90"]}
_AMOUNT_IN = {
    "oneOf": [{"type": "number", "minimum": 0}, {"type": "string"}],
    "description": "A non-negative amount with at most two decimals; strings avoid float rounding.",
}
_CSV_BODY = {
    "required": True,
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "contentMediaType": "text/csv"}},
            }
        },
    },
}

#: (method, path) -> operation, paths relative to /api/v1 in OpenAPI template syntax.
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/openapi.json"): {
        "operationId": "getOpenApi",
        "summary": "This document.",
        "tags": ["meta"],
        "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")},
    },
    ("post", "/messages"): {
        "operationId": "createMessage",
        "summary": "Start or continue a conversation with a customer's message.",
        "description": "Idempotent by `external_id`: a repeat answers 200 with `duplicate: true`.",
        "tags": ["messages"],
        "requestBody": _body("MessageCreate"),
        "responses": {
            "201": _json(_ref("MessageResult"), "Stored."),
            "200": _json(_ref("MessageResult"), "Seen before; nothing new was stored."),
            **_errors(400, 401, 403, 413, 422, 429),
        },
    },
    ("get", "/tickets"): {
        "operationId": "listTickets",
        "summary": "List tickets, most recently active first.",
        "tags": ["tickets"],
        "parameters": [
            _query(
                "status",
                "Comma-separated statuses.",
                {"type": "string", "examples": ["new,open"]},
            ),
            _query("channel", "Channel name, e.g. email, sms, api."),
            _query("assignee_id", "Assigned agent.", {"type": "integer"}),
            _query("team_id", "Team.", {"type": "integer"}),
            _query("tag", "Tag name."),
            _query("contact_id", "Contact.", {"type": "integer"}),
            *_PAGING,
        ],
        "responses": {
            "200": _json(_list_of("Ticket"), "A page of tickets."),
            **_errors(401, 403, 422, 429),
        },
    },
    ("get", "/tickets/{ticket_id}"): {
        "operationId": "getTicket",
        "summary": "A ticket with its messages and notes (merged tickets lead to the one kept).",
        "tags": ["tickets"],
        "parameters": [_path_id("ticket_id", "ticket")],
        "responses": {
            "200": _json(_ref("TicketDetail"), "The ticket."),
            **_errors(401, 403, 404, 429),
        },
    },
    ("patch", "/tickets/{ticket_id}"): {
        "operationId": "updateTicket",
        "summary": "Change status, priority, assignment, tags or attributes.",
        "tags": ["tickets"],
        "parameters": [_path_id("ticket_id", "ticket")],
        "requestBody": _body("TicketPatch"),
        "responses": {
            "200": _json(_ref("Ticket"), "The changed ticket."),
            **_errors(400, 401, 403, 404, 413, 422, 429),
        },
    },
    ("post", "/tickets/{ticket_id}/replies"): {
        "operationId": "replyToTicket",
        "summary": "Queue a reply to the customer on the ticket's channel.",
        "tags": ["tickets"],
        "parameters": [
            _path_id("ticket_id", "ticket"),
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Repeat a request with the same key to get the first reply back "
                "(200, `replayed: true`) instead of a second reply.",
                "schema": {"type": "string", "maxLength": 64},
            },
        ],
        "requestBody": _body("ReplyCreate"),
        "responses": {
            "201": _json(_ref("Message"), "Queued."),
            "200": _json(_ref("Message"), "Replayed: the reply stored for this key."),
            **_errors(400, 401, 403, 404, 409, 413, 422, 429),
        },
    },
    ("post", "/tickets/{ticket_id}/notes"): {
        "operationId": "addNote",
        "summary": "Add an internal note (never sent to the customer).",
        "tags": ["tickets"],
        "parameters": [
            _path_id("ticket_id", "ticket"),
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "As for replies.",
                "schema": {"type": "string", "maxLength": 64},
            },
        ],
        "requestBody": _body("NoteCreate"),
        "responses": {
            "201": _json(_ref("Message"), "Stored."),
            "200": _json(_ref("Message"), "Replayed: the note stored for this key."),
            **_errors(400, 401, 403, 404, 409, 413, 422, 429),
        },
    },
    ("get", "/contacts"): {
        "operationId": "listContacts",
        "summary": "List contacts, newest first, or search them with `q`.",
        "tags": ["contacts"],
        "parameters": [
            _query(
                "q",
                "Words matching the start of a name or identity word (email, phone); "
                "with `q` the best `limit` matches are returned and `next_cursor` is null.",
            ),
            *_PAGING,
        ],
        "responses": {
            "200": _json(_list_of("Contact"), "A page of contacts."),
            **_errors(401, 403, 422, 429),
        },
    },
    ("post", "/contacts"): {
        "operationId": "createContact",
        "summary": "Create a contact.",
        "tags": ["contacts"],
        "requestBody": _body("ContactWrite"),
        "responses": {
            "201": _json(_ref("Contact"), "Created."),
            **_errors(400, 401, 403, 409, 413, 422, 429),
        },
    },
    ("get", "/contacts/{contact_id}"): {
        "operationId": "getContact",
        "summary": "A contact with identities, company, attributes and order figures.",
        "tags": ["contacts"],
        "parameters": [_path_id("contact_id", "contact")],
        "responses": {
            "200": _json(_ref("ContactDetail"), "The contact."),
            **_errors(401, 403, 404, 429),
        },
    },
    ("patch", "/contacts/{contact_id}"): {
        "operationId": "updateContact",
        "summary": "Change a contact; `email` and `phone` add identities.",
        "tags": ["contacts"],
        "parameters": [_path_id("contact_id", "contact")],
        "requestBody": _body("ContactWrite"),
        "responses": {
            "200": _json(_ref("Contact"), "The changed contact."),
            **_errors(400, 401, 403, 404, 409, 413, 422, 429),
        },
    },
    ("post", "/contacts/{contact_id}/merge"): {
        "operationId": "mergeContact",
        "summary": "Merge this contact into another; identities, tickets and orders move.",
        "tags": ["contacts"],
        "parameters": [_path_id("contact_id", "contact")],
        "requestBody": _body("ContactMerge"),
        "responses": {
            "200": _json(_ref("Contact"), "The contact kept."),
            **_errors(400, 401, 403, 404, 409, 413, 422, 429),
        },
    },
    ("get", "/orders"): {
        "operationId": "listOrders",
        "summary": "List orders, most recently placed first.",
        "tags": ["orders"],
        "parameters": [
            _query("contact_id", "Contact.", {"type": "integer"}),
            _query("status", "Status.", {"enum": [s.value for s in OrderStatus]}),
            _query("external_id", "The shop's order id."),
            *_PAGING,
        ],
        "responses": {
            "200": _json(_list_of("Order"), "A page of orders."),
            **_errors(401, 403, 422, 429),
        },
    },
    ("post", "/orders"): {
        "operationId": "recordOrder",
        "summary": "Record an order; the same `external_id` updates it (status, totals, refunds).",
        "description": "A refunded_total between zero and the total makes the order "
        "partially_refunded; equal to the total, refunded.",
        "tags": ["orders"],
        "requestBody": _body("OrderWrite"),
        "responses": {
            "201": _json(_ref("OrderResult"), "Created."),
            "200": _json(_ref("OrderResult"), "Known already; updated if anything changed."),
            **_errors(400, 401, 403, 409, 413, 422, 429),
        },
    },
    ("get", "/orders/{order_id}"): {
        "operationId": "getOrder",
        "summary": "One order.",
        "tags": ["orders"],
        "parameters": [_path_id("order_id", "order")],
        "responses": {
            "200": _json(_ref("Order"), "The order."),
            **_errors(401, 403, 404, 429),
        },
    },
    ("post", "/imports/contacts"): {
        "operationId": "importContacts",
        "summary": "Import contacts from CSV: name, email, phone, company, locale, attr:<key>.",
        "description": "`,` or `;` separated, UTF-8 (a byte-order mark is fine). Good rows are "
        "imported; bad rows are reported with their row number (the header is row 1).",
        "tags": ["imports"],
        "requestBody": _CSV_BODY,
        "responses": {
            "200": _json(_ref("ImportReport"), "What was imported and what was not."),
            **_errors(401, 403, 413, 415, 422, 429),
        },
    },
    ("post", "/imports/orders"): {
        "operationId": "importOrders",
        "summary": "Import orders from CSV: external_id, email or phone, total, currency, "
        "status, placed_at, refunded_total.",
        "tags": ["imports"],
        "requestBody": _CSV_BODY,
        "responses": {
            "200": _json(_ref("ImportReport"), "What was imported and what was not."),
            **_errors(401, 403, 413, 415, 422, 429),
        },
    },
}

_ERROR_TEXT = {
    400: "Malformed JSON or body.",
    401: "No token, or an unknown or revoked one.",
    403: "The token lacks the scope this operation needs.",
    404: "No such resource.",
    409: "Conflicts with stored data.",
    413: "The body is too large.",
    415: "Unsupported content type.",
    422: "A field is invalid; `error.field` names it.",
    429: "Too many requests for this token; retry later.",
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["status", "code", "message"],
                "properties": {
                    "status": {"type": "integer"},
                    "code": _STRING,
                    "message": _STRING,
                    "field": {"type": "string", "description": "The field that is wrong (422)."},
                    "scope": {"type": "string", "description": "The missing scope (403)."},
                },
            }
        },
    },
    "MessageCreate": {
        "type": "object",
        "required": ["external_id", "contact"],
        "additionalProperties": False,
        "properties": {
            "external_id": {
                "type": "string",
                "maxLength": 500,
                "description": "Your id for this message; repeats are recognised.",
            },
            "contact": {
                "type": "object",
                "additionalProperties": False,
                "description": "Who wrote: by email, else phone, else your own id for them.",
                "properties": {
                    "email": {"type": "string", "format": "email"},
                    "phone": _STRING,
                    "name": _STRING,
                    "id": {"type": ["string", "integer"]},
                },
            },
            "text": {"type": "string", "description": "Required unless html is given."},
            "html": {"type": "string", "description": "Sanitized before it is stored."},
            "subject": _STRING,
            "conversation_id": {
                "type": "string",
                "description": "Continue the open ticket of this conversation.",
            },
            "ticket_id": {
                "type": "integer",
                "description": "Continue this ticket (only if it is the contact's).",
            },
        },
    },
    "MessageResult": {
        "type": "object",
        "properties": {
            "duplicate": {"type": "boolean"},
            "ticket_id": {"type": "integer"},
            "message_id": {"type": "integer"},
            "contact_id": {"type": "integer"},
            "created_ticket": {"type": "boolean"},
            "created_contact": {"type": "boolean"},
        },
    },
    "Ticket": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "number": {"type": "integer"},
            "subject": _STRING,
            "status": {"enum": [s.value for s in TicketStatus]},
            "priority": {"enum": [p.value for p in Priority]},
            "channel": _STRING,
            "contact_id": {"type": "integer"},
            "assignee_id": _NULLABLE_INT,
            "team_id": _NULLABLE_INT,
            "tags": {"type": "array", "items": _STRING},
            "attributes": {"type": "object"},
            "conversation_id": _NULLABLE_STRING,
            "is_unread": {"type": "boolean"},
            "merged_into_id": _NULLABLE_INT,
            "created_at": _TIME,
            "updated_at": _TIME,
            "last_activity_at": _TIME,
            "first_response_at": _TIME,
            "solved_at": _TIME,
            "closed_at": _TIME,
        },
    },
    "TicketDetail": {
        "allOf": [
            _ref("Ticket"),
            {
                "type": "object",
                "properties": {"messages": {"type": "array", "items": _ref("Message")}},
            },
        ]
    },
    "TicketPatch": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "status": {"enum": [s.value for s in TicketStatus]},
            "priority": {"enum": [p.value for p in Priority]},
            "assignee_id": {**_NULLABLE_INT, "description": "null unassigns."},
            "team_id": _NULLABLE_INT,
            "tags": {"type": "array", "items": _STRING, "description": "Replaces all tags."},
            "attributes": {"type": "object", "description": "Merged into custom attributes."},
        },
    },
    "Message": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "ticket_id": {"type": "integer"},
            "direction": {"enum": ["inbound", "outbound", "note"]},
            "channel": _STRING,
            "external_id": _NULLABLE_STRING,
            "contact_id": _NULLABLE_INT,
            "author_id": _NULLABLE_INT,
            "author_kind": _STRING,
            "subject": _NULLABLE_STRING,
            "text": _STRING,
            "html": _NULLABLE_STRING,
            "status": {"enum": ["received", "queued", "sending", "sent", "failed"]},
            "is_auto_reply": {"type": "boolean"},
            "created_at": _TIME,
            "sent_at": _TIME,
            "attachments": {"type": "array", "items": {"type": "object"}},
            "replayed": {"type": "boolean", "description": "Only on replies and notes."},
        },
    },
    "ReplyCreate": {
        "type": "object",
        "required": ["text"],
        "additionalProperties": False,
        "properties": {
            "text": {"type": "string", "description": "Markdown."},
            "status": {
                "enum": [s.value for s in TicketStatus],
                "description": "Status to leave the ticket in after replying.",
            },
        },
    },
    "NoteCreate": {
        "type": "object",
        "required": ["text"],
        "additionalProperties": False,
        "properties": {"text": {"type": "string", "description": "Markdown; @mentions notify."}},
    },
    "Contact": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": _STRING,
            "display_name": _STRING,
            "locale": _NULLABLE_STRING,
            "company": {
                "type": ["object", "null"],
                "properties": {"id": {"type": "integer"}, "name": _STRING},
            },
            "attributes": {"type": "object"},
            "identities": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "kind": _STRING,
                        "value": _STRING,
                        "display_name": _NULLABLE_STRING,
                    },
                },
            },
            "merged_into_id": _NULLABLE_INT,
            "created_at": _TIME,
        },
    },
    "ContactDetail": {
        "allOf": [
            _ref("Contact"),
            {
                "type": "object",
                "properties": {
                    "summary": {
                        "type": "object",
                        "properties": {
                            "orders": {"type": "integer"},
                            "total_spend": _MONEY,
                            "average_order_value": _MONEY,
                            "last_order_at": _TIME,
                            "currency": _NULLABLE_STRING,
                            "is_repeat_customer": {"type": "boolean"},
                        },
                    }
                },
            },
        ]
    },
    "ContactWrite": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": _STRING,
            "email": {"type": "string", "format": "email"},
            "phone": _STRING,
            "locale": _STRING,
            "notes": _STRING,
            "attributes": {"type": "object"},
            "company_id": _NULLABLE_INT,
        },
    },
    "ContactMerge": {
        "type": "object",
        "required": ["into"],
        "additionalProperties": False,
        "properties": {"into": {"type": "integer", "description": "The contact to keep."}},
    },
    "Order": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "external_id": _STRING,
            "contact_id": {"type": "integer"},
            "status": {"enum": [s.value for s in OrderStatus]},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "total": _MONEY,
            "refunded_total": _MONEY,
            "net_total": _MONEY,
            "items": {"type": "array", "items": {"type": "object"}},
            "placed_at": _TIME,
            "created_at": _TIME,
            "updated_at": _TIME,
        },
    },
    "OrderResult": {
        "allOf": [
            _ref("Order"),
            {
                "type": "object",
                "properties": {"created": {"type": "boolean"}, "changed": {"type": "boolean"}},
            },
        ]
    },
    "OrderWrite": {
        "type": "object",
        "required": ["external_id", "total", "currency"],
        "additionalProperties": False,
        "properties": {
            "external_id": {"type": "string", "maxLength": 200},
            "contact": {
                "type": "object",
                "description": "Found by email, else phone; created when unknown.",
                "properties": {
                    "email": {"type": "string", "format": "email"},
                    "phone": _STRING,
                    "name": _STRING,
                },
            },
            "contact_id": {"type": "integer", "description": "Instead of `contact`."},
            "total": _AMOUNT_IN,
            "refunded_total": _AMOUNT_IN,
            "currency": {"type": "string", "description": "ISO 4217 code, e.g. EUR, HUF."},
            "status": {"enum": [s.value for s in OrderStatus]},
            "placed_at": {"type": "string", "format": "date-time"},
            "items": {"type": "array", "items": {"type": "object"}},
        },
    },
    "ImportReport": {
        "type": "object",
        "properties": {
            "created": {"type": "integer"},
            "updated": {"type": "integer"},
            "skipped": {"type": "integer", "description": "Rows that changed nothing."},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "row": {"type": "integer", "description": "The header is row 1."},
                        "message": _STRING,
                        "field": _NULLABLE_STRING,
                    },
                },
            },
        },
    },
}


def describe(
    operations: dict[tuple[str, str], dict[str, Any]],
    schemas: dict[str, Any] | None = None,
    tags: tuple[str, ...] = (),
) -> None:
    """Add operations (and their schemas) that another package serves under /api/v1.

    Keeping each description beside its views means a new endpoint without one
    fails the coverage test, wherever it lives.
    """
    OPERATIONS.update(operations)
    SCHEMAS.update(schemas or {})
    for tag in tags:
        if tag not in _EXTRA_TAGS:
            _EXTRA_TAGS.append(tag)


_EXTRA_TAGS: list[str] = []


def flask_rule_to_openapi(rule: str) -> str:
    """``/api/v1/tickets/<int:ticket_id>`` -> ``/tickets/{ticket_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.removeprefix(PREFIX))


def _views_by_operation() -> dict[tuple[str, str], Any]:
    views = {}
    for rule in current_app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX + "/"):
            continue
        for method in rule.methods or ():
            if method in ("HEAD", "OPTIONS"):
                continue
            views[(method.lower(), flask_rule_to_openapi(rule.rule))] = current_app.view_functions[
                rule.endpoint
            ]
    return views


def build_document() -> dict[str, Any]:
    """Assemble the document for the running app."""
    views = _views_by_operation()
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), operation in OPERATIONS.items():
        view = views.get((method, path))
        described = dict(operation)
        if view is not None and is_token_view(view):
            scope = scope_of(view)
            described["security"] = [{"bearerAuth": [scope] if scope else []}]
            if scope:
                described["x-scope"] = scope
        else:
            described["security"] = []
        paths.setdefault(path, {})[method] = described
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Rapport API",
            "version": "1.0.0",
            "summary": "Tickets, messages, contacts, orders, vouchers and loyalty of a Rapport help desk.",
            "description": "JSON only. Authenticate with `Authorization: Bearer rpt_...`; each "
            "operation needs the scope listed in its security requirement. Errors are "
            '`{"error": {"status", "code", "message"}}`; 422 errors name the `field`. '
            "Lists are paged with an opaque `cursor`. Each token has its own rate limit.",
        },
        "servers": [{"url": PREFIX}],
        "tags": [
            {"name": n}
            for n in ("messages", "tickets", "contacts", "orders", "imports", *_EXTRA_TAGS)
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "rpt_ token",
                    "description": "Scopes a token may carry: " + ", ".join(SCOPES) + ".",
                    "x-scopes": list(SCOPES),
                }
            },
            "schemas": SCHEMAS,
            "responses": {
                f"E{status}": {
                    "description": text,
                    "content": {"application/json": {"schema": _ref("Error")}},
                }
                for status, text in _ERROR_TEXT.items()
            },
        },
    }


@bp.get("/openapi.json")
@public
def openapi_document():
    return jsonify(build_document())
