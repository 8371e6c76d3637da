"""The figures a shop cares about for one contact, and their timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import Contact, Order, OrderStatus


@dataclass(frozen=True, slots=True)
class ContactSummary:
    orders: int
    total_spend: Decimal
    average_order_value: Decimal
    last_order_at: datetime | None
    currency: str | None

    @property
    def is_repeat_customer(self) -> bool:
        return self.orders >= 2


_SALES = [s for s in OrderStatus if s.counts_as_sale]


def contact_summary(contact: Contact) -> ContactSummary:
    """Count paid orders and money spent (net of refunds) for ``contact``."""
    row = db.session.execute(
        select(
            func.count(Order.id),
            func.coalesce(func.sum(Order.total - Order.refunded_total), 0),
            func.max(Order.placed_at),
            func.min(Order.currency),
        ).where(Order.contact_id == contact.id, Order.status.in_(_SALES))
    ).one()
    orders = int(row[0])
    total = Decimal(str(row[1])).quantize(Decimal("0.01"))
    last = row[2]
    if last is not None and last.tzinfo is None:  # SQLite aggregates bypass the column type
        from datetime import UTC

        last = last.replace(tzinfo=UTC)
    average = (total / orders).quantize(Decimal("0.01")) if orders else Decimal("0.00")
    return ContactSummary(orders, total, average, last, row[3])
