"""Plain-JSON shapes of tickets, messages, contacts and orders as the API returns them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from helpdesk.models import Contact, Message, Order, Ticket


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def money(value: Decimal | None) -> str:
    """Amounts are strings ("12.50") so no client rounds them through a float."""
    return str((value or Decimal("0")).quantize(Decimal("0.01")))


def ticket_json(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "number": ticket.number,
        "subject": ticket.subject,
        "status": ticket.status.value,
        "priority": ticket.priority.value,
        "channel": ticket.channel,
        "contact_id": ticket.contact_id,
        "assignee_id": ticket.assignee_id,
        "team_id": ticket.team_id,
        "tags": [tag.name for tag in ticket.tags],
        "attributes": ticket.attributes or {},
        "conversation_id": ticket.conversation_id,
        "is_unread": ticket.is_unread,
        "merged_into_id": ticket.merged_into_id,
        "created_at": _time(ticket.created_at),
        "updated_at": _time(ticket.updated_at),
        "last_activity_at": _time(ticket.last_activity_at),
        "first_response_at": _time(ticket.first_response_at),
        "solved_at": _time(ticket.solved_at),
        "closed_at": _time(ticket.closed_at),
    }


def message_json(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "ticket_id": message.ticket_id,
        "direction": message.direction.value,
        "channel": message.channel,
        "external_id": message.external_id,
        "contact_id": message.contact_id,
        "author_id": message.author_id,
        "author_kind": message.author_kind,
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "status": message.status.value,
        "is_auto_reply": message.is_auto_reply,
        "created_at": _time(message.created_at),
        "sent_at": _time(message.sent_at),
        "attachments": [
            {
                "id": a.id,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "skipped_reason": a.skipped_reason,
            }
            for a in message.attachments
        ],
    }


def contact_json(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "name": contact.name,
        "display_name": contact.display_name,
        "locale": contact.locale,
        "company": (
            {"id": contact.company.id, "name": contact.company.name} if contact.company else None
        ),
        "attributes": contact.attributes or {},
        "identities": [
            {"kind": i.kind.value, "value": i.value, "display_name": i.display_name}
            for i in contact.identities
        ],
        "merged_into_id": contact.merged_into_id,
        "created_at": _time(contact.created_at),
    }


def order_json(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "external_id": order.external_id,
        "contact_id": order.contact_id,
        "status": order.status.value,
        "currency": order.currency,
        "total": money(order.total),
        "refunded_total": money(order.refunded_total),
        "net_total": money(order.net_total),
        "items": order.items or [],
        "placed_at": _time(order.placed_at),
        "created_at": _time(order.created_at),
        "updated_at": _time(order.updated_at),
    }
