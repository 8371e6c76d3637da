"""Gather the facts a policy is evaluated on from the database (the one impure step)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import Contact, Order, OrderStatus, Ticket, utcnow

from .policy import Facts

_SALES = [s for s in OrderStatus if s.counts_as_sale]


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite aggregates drop the zone
        return value.replace(tzinfo=UTC)
    return value


def facts_for(
    contact: Contact,
    ticket: Ticket | None = None,
    *,
    trigger: str | None = None,
    order: Order | None = None,
    now: datetime | None = None,
    **extra: Any,
) -> Facts:
    """Describe ``contact`` (orders, spend, tenure) and ``ticket`` as of ``now``.

    ``extra`` sets further fields the caller knows (``csat=2``, ``has_survey_answer=True``).
    """
    count, spend, first = db.session.execute(
        select(
            func.count(Order.id),
            func.coalesce(func.sum(Order.total - Order.refunded_total), 0),
            func.min(Order.placed_at),
        ).where(Order.contact_id == contact.id, Order.status.in_(_SALES))
    ).one()
    spend = Decimal(str(spend)).quantize(Decimal("0.01"))
    first_order_at = _aware(first)
    facts = Facts(
        at=now or utcnow(),
        contact_id=contact.id,
        trigger=trigger,
        paid_orders=int(count),
        total_spend=spend,
        average_order_value=(spend / count).quantize(Decimal("0.01")) if count else None,
        first_order_at=first_order_at,
        customer_since=first_order_at or contact.created_at,
    )
    if ticket is not None:
        facts = replace(
            facts,
            ticket_id=ticket.id,
            ticket_status=ticket.status.value,
            channel=ticket.channel,
            tags=frozenset(t.name for t in ticket.tags),
            reopen_count=ticket.reopen_count or 0,
        )
    if order is not None:
        facts = replace(facts, order_id=order.id, order_total=order.net_total)
    return replace(facts, **extra) if extra else facts
