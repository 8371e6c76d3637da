"""Build the facts a rule's conditions read, from the database, in one place.

Cheap facts are plain values; ones that need a query (order count, spend,
points, SLA, survey scores) are callables that :class:`Facts` resolves only
when a condition reads them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import Contact, Message, Order, OrderStatus, Ticket, utcnow

from .conditions import Facts
from .models import ReportedActivity

log = logging.getLogger(__name__)

_SALE_STATUSES = [s for s in OrderStatus if s.counts_as_sale]


@dataclass
class Subject:
    """The records one event is about (any may be None)."""

    trigger: str
    ticket: Ticket | None = None
    contact: Contact | None = None
    message: Message | None = None
    order: Order | None = None
    survey: Any = None
    activity: ReportedActivity | None = None
    refs: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What the event is about, for logs and idempotency keys."""
        if self.survey is not None:
            return f"survey:{self.survey.id}"
        if self.ticket is not None:
            return f"ticket:{self.ticket.id}"
        if self.order is not None:
            return f"order:{self.order.id}"
        if self.activity is not None:
            return f"activity:{self.activity.id}"
        if self.contact is not None:
            return f"contact:{self.contact.id}"
        return "none"


def load_subject(trigger: str, refs: dict[str, Any]) -> Subject:
    """Load the records named by an event's ids."""
    subject = Subject(trigger=trigger, refs=dict(refs))
    session = db.session
    if refs.get("survey_id"):
        from automation.surveys.models import Survey

        subject.survey = session.get(Survey, refs["survey_id"])
    if refs.get("ticket_id"):
        subject.ticket = session.get(Ticket, refs["ticket_id"])
    if refs.get("message_id"):
        subject.message = session.get(Message, refs["message_id"])
    if refs.get("order_id"):
        subject.order = session.get(Order, refs["order_id"])
    if refs.get("activity_id"):
        subject.activity = session.get(ReportedActivity, refs["activity_id"])
    contact_id = refs.get("contact_id")
    if contact_id is None:
        for owner in (subject.ticket, subject.order, subject.activity, subject.survey):
            if owner is not None:
                contact_id = owner.contact_id
                break
    if contact_id is not None:
        subject.contact = session.get(Contact, contact_id)
    return subject


def _minutes(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() / 60, 2)


def _latest_score(ticket_id: int, kind: str) -> int | None:
    from automation.surveys.models import Survey

    return db.session.scalar(
        select(Survey.score)
        .where(Survey.ticket_id == ticket_id, Survey.kind == kind, Survey.answered_at.is_not(None))
        .order_by(Survey.answered_at.desc(), Survey.id.desc())
        .limit(1)
    )


def _sla_breached(ticket_id: int) -> bool:
    from automation.sla.models import TicketSla

    clock = db.session.get(TicketSla, ticket_id)
    return bool(clock and clock.is_breached)


def _order_figures(contact_id: int) -> tuple[int, float]:
    """Paid orders and net spend, in one query."""
    count, total = db.session.execute(
        select(
            func.count(Order.id),
            func.coalesce(func.sum(Order.total - Order.refunded_total), 0),
        ).where(Order.contact_id == contact_id, Order.status.in_(_SALE_STATUSES))
    ).one()
    return int(count or 0), float(Decimal(str(total or 0)))


def _loyalty(contact: Contact, what: str) -> Any:
    """Points or tier from the loyalty package, when it is installed."""
    try:
        if what == "points":
            from automation.loyalty.operations import balance

            return balance(contact).available
        from automation.loyalty.models import ContactTier

        row = db.session.get(ContactTier, contact.id)
        return row.tier_key if row is not None else None
    except ImportError:
        return None


def build_facts(subject: Subject, *, now: datetime | None = None) -> Facts:
    """The facts for one event."""
    now = now or utcnow()
    values: dict[str, Any] = {
        "event.changed_fields": sorted((subject.refs.get("changes") or {}).keys()),
        "event.actor_kind": subject.refs.get("actor_kind"),
    }
    ticket = subject.ticket
    if ticket is not None:
        tid = ticket.id
        values.update(
            {
                "ticket.channel": ticket.channel,
                "ticket.status": ticket.status.value,
                "ticket.priority": ticket.priority.value,
                "ticket.tags": lambda: [t.name for t in ticket.tags],
                "ticket.team": lambda: ticket.team.name if ticket.team else None,
                "ticket.assignee": lambda: ticket.assignee.email if ticket.assignee else None,
                "ticket.subject": ticket.subject,
                "ticket.language": ticket.language,
                "ticket.reopen_count": ticket.reopen_count,
                "ticket.age_hours": round((now - ticket.created_at).total_seconds() / 3600, 2),
                "ticket.first_response_minutes": _minutes(
                    ticket.created_at, ticket.first_response_at
                ),
                "ticket.resolution_minutes": _minutes(ticket.created_at, ticket.solved_at),
                "ticket.sla_breached": lambda: _sla_breached(tid),
                "ticket.csat_score": lambda: _latest_score(tid, "csat"),
                "ticket.nps_score": lambda: _latest_score(tid, "nps"),
                "ticket.attributes": dict(ticket.attributes or {}),
            }
        )
    message = subject.message
    if message is not None:
        values.update(
            {
                "message.body": message.text,
                "message.subject": message.subject,
                "message.channel": message.channel,
                "message.is_auto_reply": message.is_auto_reply,
            }
        )
    contact = subject.contact
    if contact is not None:
        cid = contact.id
        figures: list[tuple[int, float]] = []

        def orders() -> tuple[int, float]:
            if not figures:
                figures.append(_order_figures(cid))
            return figures[0]

        values.update(
            {
                "contact.email": lambda: contact.email,
                "contact.name": contact.name,
                "contact.language": contact.locale,
                "contact.order_count": lambda: orders()[0],
                "contact.total_spend": lambda: orders()[1],
                "contact.tier": lambda: _loyalty(contact, "tier"),
                "contact.points": lambda: _loyalty(contact, "points"),
                "contact.ticket_count": lambda: int(
                    db.session.scalar(select(func.count(Ticket.id)).where(Ticket.contact_id == cid))
                    or 0
                ),
                "contact.attributes": dict(contact.attributes or {}),
            }
        )
    order = subject.order
    if order is not None:
        values.update(
            {
                "order.status": order.status.value,
                "order.total": float(order.total),
                "order.currency": order.currency,
            }
        )
    survey = subject.survey
    if survey is not None:
        values.update(
            {
                "survey.kind": survey.kind,
                "survey.score": survey.score,
                "survey.csat_score": survey.score if survey.kind == "csat" else None,
                "survey.nps_score": survey.score if survey.kind == "nps" else None,
                "survey.comment": survey.comment,
            }
        )
    activity = subject.activity
    if activity is not None:
        values.update({"activity.type": activity.type, "activity.data": dict(activity.data or {})})
    return Facts(values)
