"""Orders a shop reports, for the CRM figures and for loyalty."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from helpdesk.extensions import db

from ._types import JSONType, UTCDateTime, enum_type, utcnow

if TYPE_CHECKING:  # pragma: no cover
    from .contacts import Contact


class OrderStatus(enum.Enum):
    PENDING = "pending"
    PAID = "paid"
    FULFILLED = "fulfilled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"

    @property
    def counts_as_sale(self) -> bool:
        return self in (OrderStatus.PAID, OrderStatus.FULFILLED, OrderStatus.PARTIALLY_REFUNDED)


class Order(db.Model):  # type: ignore[name-defined]
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_contact_placed", "contact_id", "placed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    refunded_total: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[OrderStatus] = mapped_column(enum_type(OrderStatus), default=OrderStatus.PAID)
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    contact: Mapped[Contact] = relationship()

    @property
    def net_total(self) -> Decimal:
        return self.total - (self.refunded_total or Decimal("0"))
