"""The order listener and the periodic loyalty jobs."""

from __future__ import annotations

import logging

from helpdesk import events, jobs
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Order

from .operations import apply_order, expire_points, mature_pending_points, reevaluate_tiers

log = logging.getLogger(__name__)
LOYALTY = Actor.system("loyalty")


@jobs.job(retries=3, retry_delay=30)
def apply_order_points(order_id: int) -> None:
    """Award or reverse the points for one order, as its status now says."""
    order = db.session.get(Order, order_id)
    if order is None:
        return
    apply_order(order, actor=LOYALTY)
    db.session.commit()


def _on_order_recorded(sender: object, event: events.OrderRecorded, **_: object) -> None:
    apply_order_points(event.order_id)


def connect() -> None:
    """Listen for orders (idempotent: blinker keeps one connection per receiver)."""
    events.order_recorded.connect(_on_order_recorded)


@jobs.periodic(minute="7")
def mature_points_job() -> int:
    """Hourly: points whose return window has passed become spendable."""
    matured = mature_pending_points(actor=LOYALTY)
    db.session.commit()
    return matured


@jobs.periodic(hour="3", minute="17")
def expire_points_job() -> int:
    """Daily: expire what is left of old lots, then re-check tiers (grace periods end)."""
    expired = expire_points(actor=LOYALTY)
    db.session.commit()
    reevaluate_tiers()
    db.session.commit()
    return expired
