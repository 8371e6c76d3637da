"""Build the facts a rule's conditions read, from the database, in one place.

Cheap facts are plain values; ones that need a query (order count, spend,
points, SLA, survey scores) are callables that :class:`Facts` resolves only
when a condition reads them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select

from helpdesk.extensions import db
from helpdesk.models import Contact, Message, Order, OrderStatus, Ticket, utcnow

from .conditions import Facts
from .models import ReportedActivity
from .schema import trigger_has_ticket

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

    surveys = Survey.__table__.c
    return db.session.scalar(
        select(surveys.score)
        .where(
            surveys.ticket_id == ticket_id, surveys.kind == kind, surveys.answered_at.is_not(None)
        )
        .order_by(surveys.answered_at.desc(), surveys.id.desc())
        .limit(1)
    )


def _sla_breached(ticket_id: int) -> bool:
    from automation.sla.models import TicketSla

    clock = db.session.get(TicketSla, ticket_id)
    return bool(clock and clock.is_breached)


_ORDERS = Order.__table__.c


def _sale_of(contact_id: Any) -> Any:
    # OR, not IN: an IN list is re-rendered on every execution of the statement.
    return (_ORDERS.contact_id == contact_id) & or_(
        *(_ORDERS.status == status for status in _SALE_STATUSES)
    )


def _figures(count: Any, total: Any) -> tuple[int, float]:
    return int(count or 0), float(Decimal(str(total or 0)))


def _order_figures(contact_id: int) -> tuple[int, float]:
    """Paid orders and net spend, in one query."""
    count, total = db.session.execute(
        select(
            func.count(_ORDERS.id),
            func.coalesce(func.sum(_ORDERS.total - _ORDERS.refunded_total), 0),
        ).where(_sale_of(contact_id))
    ).one()
    return _figures(count, total)


def _ticket_count(contact_id: int) -> int:
    tickets = Ticket.__table__.c
    return int(
        db.session.scalar(select(func.count(tickets.id)).where(tickets.contact_id == contact_id))
        or 0
    )


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


def _event_values(refs: dict[str, Any]) -> dict[str, Any]:
    return {
        "event.changed_fields": sorted((refs.get("changes") or {}).keys()),
        "event.actor_kind": refs.get("actor_kind"),
    }


def _ticket_values(ticket: Any, now: datetime) -> dict[str, Any]:
    """The ticket's own facts (from a model or a row of its columns); lookups stay lazy."""
    tid = ticket.id
    return {
        "ticket.channel": ticket.channel,
        "ticket.status": ticket.status.value,
        "ticket.priority": ticket.priority.value,
        "ticket.subject": ticket.subject,
        "ticket.language": ticket.language,
        "ticket.reopen_count": ticket.reopen_count,
        "ticket.age_hours": round((now - ticket.created_at).total_seconds() / 3600, 2),
        "ticket.first_response_minutes": _minutes(ticket.created_at, ticket.first_response_at),
        "ticket.resolution_minutes": _minutes(ticket.created_at, ticket.solved_at),
        "ticket.sla_breached": lambda: _sla_breached(tid),
        "ticket.csat_score": lambda: _latest_score(tid, "csat"),
        "ticket.nps_score": lambda: _latest_score(tid, "nps"),
        "ticket.attributes": dict(ticket.attributes or {}),
    }


def _message_values(message: Any) -> dict[str, Any]:
    return {
        "message.body": message.text,
        "message.subject": message.subject,
        "message.channel": message.channel,
        "message.is_auto_reply": message.is_auto_reply,
    }


def _order_values(order: Any) -> dict[str, Any]:
    return {
        "order.status": order.status.value,
        "order.total": float(order.total),
        "order.currency": order.currency,
    }


def _survey_values(survey: Any) -> dict[str, Any]:
    return {
        "survey.kind": survey.kind,
        "survey.score": survey.score,
        "survey.csat_score": survey.score if survey.kind == "csat" else None,
        "survey.nps_score": survey.score if survey.kind == "nps" else None,
        "survey.comment": survey.comment,
    }


def _activity_values(activity: Any) -> dict[str, Any]:
    return {"activity.type": activity.type, "activity.data": dict(activity.data or {})}


def build_facts(subject: Subject, *, now: datetime | None = None) -> Facts:
    """The facts for one event, from its loaded records."""
    now = now or utcnow()
    values = _event_values(subject.refs)
    ticket = subject.ticket
    if ticket is not None:
        values.update(_ticket_values(ticket, now))
        values.update(
            {
                "ticket.tags": lambda: [t.name for t in ticket.tags],
                "ticket.team": lambda: ticket.team.name if ticket.team else None,
                "ticket.assignee": lambda: ticket.assignee.email if ticket.assignee else None,
            }
        )
    if subject.message is not None:
        values.update(_message_values(subject.message))
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
                "contact.ticket_count": lambda: _ticket_count(cid),
                "contact.attributes": dict(contact.attributes or {}),
            }
        )
    if subject.order is not None:
        values.update(_order_values(subject.order))
    if subject.survey is not None:
        values.update(_survey_values(subject.survey))
    if subject.activity is not None:
        values.update(_activity_values(subject.activity))
    return Facts(values)


# ------------------------------------------------------- facts without the models

_TICKET_COLUMNS = (
    "id",
    "channel",
    "status",
    "priority",
    "subject",
    "language",
    "reopen_count",
    "created_at",
    "first_response_at",
    "solved_at",
    "attributes",
    "contact_id",
    "team_id",
    "assignee_id",
    "merged_into_id",
)
_statements: dict[str, Any] = {}


def _statement(name: str) -> Any:
    """Build each read once: a statement object reused skips SQLAlchemy's cache-key work."""
    stmt = _statements.get(name)
    if stmt is None:
        stmt = _statements[name] = _build_statement(name)
    return stmt


def _contact_columns(contacts: Any) -> list[Any]:
    """The contact's columns with its paid orders and net spend (correlated, indexed)."""
    return [
        contacts.id.label("contact_row_id"),
        contacts.name.label("contact_name"),
        contacts.locale.label("contact_locale"),
        contacts.attributes.label("contact_attributes"),
        select(func.count(_ORDERS.id))
        .where(_sale_of(contacts.id))
        .scalar_subquery()
        .label("contact_orders"),
        select(func.coalesce(func.sum(_ORDERS.total - _ORDERS.refunded_total), 0))
        .where(_sale_of(contacts.id))
        .scalar_subquery()
        .label("contact_spend"),
    ]


def _build_statement(name: str) -> Any:
    from sqlalchemy import bindparam

    from helpdesk.models import Tag, Team, User, ticket_tags

    key: Any = bindparam("id")
    contacts = Contact.__table__.c
    if name.startswith("ticket"):
        # "ticket", "ticket+contact", "ticket+tags", "ticket+contact+tags": the ticket's
        # columns, with those of its contact and one row per tag when conditions read them.
        tickets = Ticket.__table__
        tags = Tag.__table__
        columns = [tickets.c[c] for c in _TICKET_COLUMNS]
        joined: Any = tickets
        if "+contact" in name:
            columns += _contact_columns(contacts)
            joined = joined.outerjoin(Contact.__table__, contacts.id == tickets.c.contact_id)
        if "+tags" in name:
            columns.append(tags.c.name.label("tag_name"))
            joined = joined.outerjoin(ticket_tags, ticket_tags.c.ticket_id == tickets.c.id)
            joined = joined.outerjoin(tags, tags.c.id == ticket_tags.c.tag_id)
        stmt = select(*columns).select_from(joined).where(tickets.c.id == key)
        return stmt.order_by(tags.c.name) if "+tags" in name else stmt
    if name == "tags":
        tags = Tag.__table__.c
        return (
            select(tags.name)
            .join(ticket_tags, ticket_tags.c.tag_id == tags.id)
            .where(ticket_tags.c.ticket_id == key)
            .order_by(tags.name)
        )
    if name == "team":
        return select(Team.__table__.c.name).where(Team.__table__.c.id == key)
    if name == "assignee":
        return select(User.__table__.c.email).where(User.__table__.c.id == key)
    if name == "contact":
        return select(*_contact_columns(contacts)).where(contacts.id == key)
    models: dict[str, Any] = {"message": Message, "order": Order, "activity": ReportedActivity}
    if name == "survey":
        from automation.surveys.models import Survey

        models["survey"] = Survey
    table = models[name].__table__
    return select(table).where(table.c.id == key)


def _read(name: str, ident: Any) -> Any:
    """One row by id, or None."""
    return db.session.execute(_statement(name), {"id": ident}).first()


def _once(load: Any) -> Any:
    """A zero-argument function that calls ``load`` the first time only."""
    box: list[Any] = []

    def get() -> Any:
        if not box:
            box.append(load())
        return box[0]

    return get


#: Not read yet (None would say: read, and not there).
_NOT_READ: Any = object()


def _contact_lookups(contact_id: int, read: Any = _NOT_READ) -> dict[str, Any]:
    """Every contact fact, each read when a condition first needs it (one query for most).

    ``read`` is the row already read with the ticket, when it was.
    """
    row = _once(lambda: _read("contact", contact_id) if read is _NOT_READ else read)
    model = _once(lambda: db.session.get(Contact, contact_id))

    def column(pick: Callable[[Any], Any]) -> Callable[[], Any]:
        def get() -> Any:
            found = row()
            return None if found is None or found.contact_row_id is None else pick(found)

        return get

    def with_model(pick: Callable[[Contact], Any]) -> Callable[[], Any]:
        def get() -> Any:
            contact = model()
            return None if contact is None else pick(contact)

        return get

    return {
        "contact.email": with_model(lambda c: c.email),
        "contact.name": column(lambda r: r.contact_name),
        "contact.language": column(lambda r: r.contact_locale),
        "contact.order_count": column(lambda r: _figures(r.contact_orders, r.contact_spend)[0]),
        "contact.total_spend": column(lambda r: _figures(r.contact_orders, r.contact_spend)[1]),
        "contact.tier": with_model(lambda c: _loyalty(c, "tier")),
        "contact.points": with_model(lambda c: _loyalty(c, "points")),
        "contact.ticket_count": column(lambda r: _ticket_count(contact_id)),
        "contact.attributes": column(lambda r: dict(r.contact_attributes or {})),
    }


def event_facts(
    trigger: str,
    refs: dict[str, Any],
    *,
    now: datetime | None = None,
    fields: Collection[str] = (),
) -> Facts | None:
    """The facts for one event, read as columns, without loading the records as models.

    The same values as ``build_facts(load_subject(...))``. ``fields`` are the ones
    the conditions read: the ticket's tags and its contact with their order
    figures come in the ticket's own query when listed; every other read that
    only some conditions need waits until a condition reads it. None when the
    event names a ticket that is gone or merged into another, or the trigger
    needs a ticket and the event names none.
    """
    if db.session.autoflush:
        db.session.flush()  # the model path would see pending changes through autoflush
    now = now or utcnow()
    values = _event_values(refs)
    owners = []
    if refs.get("survey_id"):
        survey = _read("survey", refs["survey_id"])
        if survey is not None:
            values.update(_survey_values(survey))
            owners.append(survey)
    ticket = None
    contact_read = _NOT_READ
    if refs.get("ticket_id"):
        with_tags = "ticket.tags" in fields
        with_contact = any(f.startswith("contact.") for f in fields)
        name = "ticket" + ("+contact" if with_contact else "") + ("+tags" if with_tags else "")
        rows = db.session.execute(_statement(name), {"id": refs["ticket_id"]}).all()
        ticket = rows[0] if rows else None
        if ticket is not None:
            if ticket.merged_into_id is not None:
                return None
            values.update(_ticket_values(ticket, now))
            if with_tags:
                names = [row.tag_name for row in rows if row.tag_name is not None]
                values["ticket.tags"] = names
            if with_contact and refs.get("contact_id") is None:
                contact_read = ticket
    if ticket is None and trigger_has_ticket(trigger):
        return None
    if ticket is not None:
        tid, team_id, assignee_id = ticket.id, ticket.team_id, ticket.assignee_id
        values.setdefault(
            "ticket.tags", lambda: list(db.session.scalars(_statement("tags"), {"id": tid}))
        )
        values["ticket.team"] = lambda: (
            db.session.scalar(_statement("team"), {"id": team_id}) if team_id else None
        )
        values["ticket.assignee"] = lambda: (
            db.session.scalar(_statement("assignee"), {"id": assignee_id}) if assignee_id else None
        )
    if refs.get("message_id"):
        message = _read("message", refs["message_id"])
        if message is not None:
            values.update(_message_values(message))
    order = _read("order", refs["order_id"]) if refs.get("order_id") else None
    if order is not None:
        values.update(_order_values(order))
    activity = _read("activity", refs["activity_id"]) if refs.get("activity_id") else None
    if activity is not None:
        values.update(_activity_values(activity))
    contact_id = refs.get("contact_id")
    if contact_id is None:
        # The same order as load_subject: ticket, order, activity, survey.
        for owner in (ticket, order, activity, *owners):
            if owner is not None:
                contact_id = owner.contact_id
                break
    if contact_id is not None:
        values.update(_contact_lookups(contact_id, contact_read))
    return Facts(values)
