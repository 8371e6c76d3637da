"""The figures a shop cares about for one contact, and what the ticket sidebar shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import Contact, Order, OrderStatus, Ticket, TicketStatus

#: How many recent orders and open tickets the sidebar lists.
RECENT = 5

_CENT = Decimal("0.01")
_SALES = [s for s in OrderStatus if s.counts_as_sale]
_OPEN = [s for s in TicketStatus if not s.is_done]


@dataclass(frozen=True, slots=True)
class ContactSummary:
    """Paid orders and spend (net of refunds) in the contact's main currency.

    When a contact has bought in more than one currency, ``total_spend`` and
    ``average_order_value`` are for ``currency`` (the one with the most orders)
    and ``spend_by_currency`` has every total; sums across currencies mean nothing.
    """

    orders: int
    total_spend: Decimal
    average_order_value: Decimal
    last_order_at: datetime | None
    currency: str | None
    first_order_at: datetime | None = None
    spend_by_currency: tuple[tuple[str, Decimal], ...] = ()
    #: The latest orders of any status, newest first.
    recent_orders: tuple[Order, ...] = ()
    #: Tickets not yet solved or closed, most recently active first.
    open_tickets: tuple[Ticket, ...] = field(default=())

    @property
    def is_repeat_customer(self) -> bool:
        return self.orders >= 2

    @property
    def has_mixed_currencies(self) -> bool:
        return len(self.spend_by_currency) > 1


def _aware(value: datetime | None) -> datetime | None:
    # SQLite aggregates bypass the column type and hand back naive UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def contact_summary(contact: Contact) -> ContactSummary:
    """Count paid orders and money spent (net of refunds) for ``contact``."""
    rows = db.session.execute(
        select(
            Order.currency,
            func.count(Order.id),
            func.coalesce(func.sum(Order.total - Order.refunded_total), 0),
            func.min(Order.placed_at),
            func.max(Order.placed_at),
        )
        .where(Order.contact_id == contact.id, Order.status.in_(_SALES))
        .group_by(Order.currency)
    ).all()
    by_currency = sorted(
        ((row[0], int(row[1]), Decimal(str(row[2])).quantize(_CENT)) for row in rows),
        key=lambda item: (-item[1], -item[2], item[0]),
    )
    orders = sum(count for _, count, _ in by_currency)
    currency, main_count, total = by_currency[0] if by_currency else (None, 0, Decimal("0.00"))
    average = (total / main_count).quantize(_CENT) if main_count else Decimal("0.00")
    firsts = [_aware(row[3]) for row in rows if row[3] is not None]
    lasts = [_aware(row[4]) for row in rows if row[4] is not None]

    recent = db.session.scalars(
        select(Order)
        .where(Order.contact_id == contact.id)
        .order_by(Order.placed_at.desc(), Order.id.desc())
        .limit(RECENT)
    ).all()
    open_tickets = db.session.scalars(
        select(Ticket)
        .where(Ticket.contact_id == contact.id, Ticket.status.in_(_OPEN))
        .order_by(Ticket.last_activity_at.desc(), Ticket.id.desc())
        .limit(RECENT + 1)  # one spare: the sidebar leaves out the ticket it sits beside
    ).all()
    return ContactSummary(
        orders=orders,
        total_spend=total,
        average_order_value=average,
        last_order_at=max(lasts) if lasts else None,  # type: ignore[type-var]
        currency=currency,
        first_order_at=min(firsts) if firsts else None,  # type: ignore[type-var]
        spend_by_currency=tuple((cur, amount) for cur, _, amount in by_currency),
        recent_orders=tuple(recent),
        open_tickets=tuple(open_tickets),
    )
