"""Orders a shop reports: record (create or update) idempotently by the shop's order id."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from channels.base import IdentityKind, SenderIdentity
from helpdesk import events
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Contact, Order, OrderStatus, utcnow

from . import audit
from .contacts import OperationError, create_contact, find_contact, live_contact

log = logging.getLogger(__name__)

_CENT = Decimal("0.01")
_MAX_AMOUNT = Decimal("9999999999.99")  # Numeric(12, 2)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class OrderError(OperationError):
    """An order that cannot be recorded; ``field`` names the value that is wrong."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


@dataclass(frozen=True, slots=True)
class OrderResult:
    order: Order
    created: bool
    #: Something about the order changed (always True when created).
    changed: bool


@lru_cache(maxsize=1)
def known_currencies() -> frozenset[str]:
    """ISO 4217 codes, from the CLDR data Babel ships."""
    from babel.numbers import list_currencies

    return frozenset(list_currencies())


def check_currency(code: str) -> str:
    """Return the upper-cased code, or refuse one ISO 4217 does not know."""
    value = (code or "").strip().upper()
    if value not in known_currencies():
        raise OrderError(f"unknown currency code '{code}'", field="currency")
    return value


def check_amount(value: Decimal, field: str) -> Decimal:
    if not value.is_finite():
        raise OrderError(f"'{field}' must be a number", field=field)
    if value < 0:
        raise OrderError(f"'{field}' must not be negative", field=field)
    if value > _MAX_AMOUNT:
        raise OrderError(f"'{field}' is too large", field=field)
    if value != value.quantize(_CENT):
        raise OrderError(f"'{field}' has more than two decimals", field=field)
    return value.quantize(_CENT)


def record_order(
    *,
    actor: Actor,
    external_id: str,
    total: Decimal,
    currency: str,
    status: OrderStatus | None = None,
    placed_at: datetime | None = None,
    refunded_total: Decimal | None = None,
    items: list[dict[str, Any]] | None = None,
    contact: Contact | None = None,
    email: str | None = None,
    phone: str | None = None,
    name: str | None = None,
) -> OrderResult:
    """Create the order or bring it up to date; sends order.recorded after commit if changed.

    The contact is ``contact`` or the one owning ``email``/``phone`` (created when
    unknown). A concurrent record of the same ``external_id`` loses at the unique
    constraint; the savepoint lets us read the winner's row and update it instead.
    """
    external_id = (external_id or "").strip()
    if not external_id:
        raise OrderError("'external_id' is required", field="external_id")
    if len(external_id) > 200:
        raise OrderError("'external_id' is longer than 200 characters", field="external_id")
    currency = check_currency(currency)
    total = check_amount(total, "total")
    if refunded_total is not None:
        refunded_total = check_amount(refunded_total, "refunded_total")
    for attempt in range(3):
        try:
            with db.session.begin_nested():
                return _record(
                    actor=actor,
                    external_id=external_id,
                    total=total,
                    currency=currency,
                    status=status,
                    placed_at=placed_at,
                    refunded_total=refunded_total,
                    items=items,
                    contact=contact,
                    email=email,
                    phone=phone,
                    name=name,
                )
        except IntegrityError:
            if attempt == 2:
                raise
            log.info("recording order %s raced; reading it again", external_id)
    raise AssertionError("unreachable")


def find_order(external_id: str) -> Order | None:
    return db.session.execute(
        select(Order).where(Order.external_id == external_id.strip())
    ).scalar_one_or_none()


def _record(
    *,
    actor: Actor,
    external_id: str,
    total: Decimal,
    currency: str,
    status: OrderStatus | None,
    placed_at: datetime | None,
    refunded_total: Decimal | None,
    items: list[dict[str, Any]] | None,
    contact: Contact | None,
    email: str | None,
    phone: str | None,
    name: str | None,
) -> OrderResult:
    existing = db.session.execute(
        select(Order).where(Order.external_id == external_id).with_for_update()
    ).scalar_one_or_none()
    if existing is not None:
        return _update(
            existing,
            actor=actor,
            total=total,
            currency=currency,
            status=status,
            placed_at=placed_at,
            refunded_total=refunded_total,
            items=items,
        )

    refunded = refunded_total if refunded_total is not None else Decimal("0.00")
    if status is OrderStatus.REFUNDED and refunded_total is None:
        refunded = total
    final_status = _settle_status(status or OrderStatus.PAID, total, refunded)
    owner = contact or order_contact(actor=actor, email=email, phone=phone, name=name)
    now = utcnow()
    order = Order(
        external_id=external_id,
        contact_id=owner.id,
        total=total,
        refunded_total=refunded,
        currency=currency,
        status=final_status,
        placed_at=placed_at or now,
        items=items or [],
        created_at=now,
        updated_at=now,
    )
    db.session.add(order)
    db.session.flush()
    audit.record(
        "order.created",
        actor=actor,
        contact_id=owner.id,
        order_id=order.id,
        external_id=external_id,
        status=final_status.value,
        total=str(total),
        currency=currency,
    )
    events.on_commit(
        events.OrderRecorded(
            actor=actor, order_id=order.id, contact_id=owner.id, status=final_status.value
        )
    )
    return OrderResult(order=order, created=True, changed=True)


def _update(
    order: Order,
    *,
    actor: Actor,
    total: Decimal,
    currency: str,
    status: OrderStatus | None,
    placed_at: datetime | None,
    refunded_total: Decimal | None,
    items: list[dict[str, Any]] | None,
) -> OrderResult:
    if currency != order.currency:
        raise OrderError(
            f"order {order.external_id} is in {order.currency}; its currency cannot change",
            field="currency",
            status=409,
        )
    refunded = refunded_total if refunded_total is not None else order.refunded_total
    if status is OrderStatus.REFUNDED and refunded_total is None:
        refunded = total
    wanted = status or order.status
    if status is None and wanted in (OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED):
        # A status that came from refunds follows the refunded amount again.
        wanted = OrderStatus.PAID
    final_status = _settle_status(wanted, total, refunded)

    changes: dict[str, list[Any]] = {}

    def change(field: str, old: Any, new: Any, shown: Any = str) -> None:
        if old != new:
            changes[field] = [shown(old), shown(new)]
            setattr(order, field, new)

    change("total", order.total, total)
    change("refunded_total", order.refunded_total, refunded)
    change("status", order.status, final_status, lambda s: s.value)
    if placed_at is not None:
        change("placed_at", order.placed_at, placed_at, lambda t: t.isoformat())
    if items is not None and items != (order.items or []):
        changes["items"] = [len(order.items or []), len(items)]
        order.items = items
    if not changes:
        return OrderResult(order=order, created=False, changed=False)
    previous = changes.get("status", [order.status.value])[0]
    order.updated_at = utcnow()
    db.session.flush()
    audit.record(
        "order.updated",
        actor=actor,
        contact_id=order.contact_id,
        order_id=order.id,
        external_id=order.external_id,
        changes=changes,
    )
    events.on_commit(
        events.OrderRecorded(
            actor=actor,
            order_id=order.id,
            contact_id=order.contact_id,
            status=order.status.value,
            previous_status=previous,
        )
    )
    return OrderResult(order=order, created=False, changed=True)


def _settle_status(status: OrderStatus, total: Decimal, refunded: Decimal) -> OrderStatus:
    """Make the status agree with the refunded amount (partial or full)."""
    if refunded > total:
        raise OrderError("'refunded_total' is more than 'total'", field="refunded_total")
    if status is OrderStatus.CANCELLED:
        return status
    if refunded > 0:
        return OrderStatus.REFUNDED if refunded == total else OrderStatus.PARTIALLY_REFUNDED
    if status is OrderStatus.PARTIALLY_REFUNDED:
        raise OrderError(
            "a partially refunded order needs 'refunded_total' above zero", field="refunded_total"
        )
    if status is OrderStatus.REFUNDED and total > 0:
        raise OrderError("a refunded order needs 'refunded_total'", field="refunded_total")
    return status


def order_contact(
    *, actor: Actor, email: str | None = None, phone: str | None = None, name: str | None = None
) -> Contact:
    """Return the contact owning ``email`` (else ``phone``), creating one when neither is known."""
    email = (email or "").strip() or None
    phone = (phone or "").strip() or None
    if email is None and phone is None:
        raise OrderError("an order needs the customer's 'email' or 'phone'", field="email")
    if email is not None and not _EMAIL.match(email):
        raise OrderError(f"'{email}' is not an email address", field="email")
    if phone is not None and not re.fullmatch(r"\+?[\d\s().\-]{4,}", phone):
        raise OrderError(f"'{phone}' is not a phone number", field="phone")
    for kind, value in ((IdentityKind.EMAIL, email), (IdentityKind.PHONE, phone)):
        if value is not None:
            found = find_contact(kind, value)
            if found is not None:
                return live_contact(found)
    identities = []
    if email is not None:
        identities.append(SenderIdentity(IdentityKind.EMAIL, email))
    if phone is not None:
        identities.append(SenderIdentity(IdentityKind.PHONE, phone))
    return create_contact(actor=actor, name=name or "", identities=identities)
