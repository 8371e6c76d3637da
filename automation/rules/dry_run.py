"""Replay a rule over past events without side effects.

The rule's conditions are evaluated over the records of each past event in
the period (with today's facts about them: a ticket's current tags, a contact's
current spend). Incentive actions ask the incentives package what it *would*
grant (``dry_run=True``); other actions are only counted. Everything runs
inside a savepoint that is rolled back, so even a misbehaving action cannot
leave a trace.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Contact, Direction, Message, Order, OrderStatus, Ticket

from .conditions import compile_conditions
from .facts import build_facts, load_subject
from .models import ReportedActivity
from .schema import validate_rule

#: Past events replayed at most; the report says when the period had more.
DEFAULT_LIMIT = 5000


@dataclass
class DryRunGrant:
    contact_id: int | None
    contact_name: str
    ticket_id: int | None
    policy: str
    issued: bool
    reason: str | None
    cost: Decimal | None
    currency: str | None


@dataclass
class DryRunReport:
    trigger: str
    since: datetime
    until: datetime
    evaluated: int = 0
    matched: int = 0
    truncated: bool = False
    matched_subjects: list[str] = field(default_factory=list)
    matched_ticket_ids: list[int] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    grants: list[DryRunGrant] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def issued(self) -> list[DryRunGrant]:
        return [g for g in self.grants if g.issued]

    @property
    def total_cost(self) -> Decimal:
        return sum((g.cost for g in self.issued if g.cost is not None), Decimal("0"))

    @property
    def cost_by_currency(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        for grant in self.issued:
            if grant.cost is not None:
                key = grant.currency or ""
                totals[key] = totals.get(key, Decimal("0")) + grant.cost
        return totals

    @property
    def recipients(self) -> int:
        return len({g.contact_id for g in self.issued})


def _cost(value: Any) -> tuple[Decimal | None, str | None]:
    if value is None:
        return None, None
    currency = getattr(value, "currency", None)
    amount = getattr(value, "amount", value)
    try:
        return Decimal(str(amount)), currency
    except (InvalidOperation, ValueError):
        return None, currency


def _between(column: Any, since: datetime, until: datetime) -> Any:
    return (column >= since) & (column < until)


def _past_events(
    trigger: str, since: datetime, until: datetime, limit: int
) -> Iterator[dict[str, Any]]:
    """The ids of past events of this trigger type in the period, oldest first."""
    session = db.session
    if trigger == "message.received":
        rows = session.execute(
            select(Message.id, Message.ticket_id)
            .where(
                Message.direction == Direction.INBOUND, _between(Message.created_at, since, until)
            )
            .order_by(Message.created_at, Message.id)
            .limit(limit)
        ).all()
        yield from ({"ticket_id": t, "message_id": m} for m, t in rows)
    elif trigger in ("ticket.solved", "ticket.closed"):
        column = Ticket.solved_at if trigger == "ticket.solved" else Ticket.closed_at
        ids = session.scalars(
            select(Ticket.id)
            .where(_between(column, since, until))
            .order_by(column, Ticket.id)
            .limit(limit)
        ).all()
        yield from ({"ticket_id": i} for i in ids)
    elif trigger == "ticket.reopened":
        ids = session.scalars(
            select(Ticket.id)
            .where(Ticket.reopen_count > 0, _between(Ticket.updated_at, since, until))
            .order_by(Ticket.updated_at, Ticket.id)
            .limit(limit)
        ).all()
        yield from ({"ticket_id": i} for i in ids)
    elif trigger.startswith("sla.") and trigger.endswith("_breached"):
        from automation.sla.models import TicketSla

        column = (
            TicketSla.first_response_breached_at
            if trigger == "sla.first_response_breached"
            else TicketSla.resolution_breached_at
        )
        ids = session.scalars(
            select(TicketSla.ticket_id)
            .where(_between(column, since, until))
            .order_by(column)
            .limit(limit)
        ).all()
        yield from ({"ticket_id": i} for i in ids)
    elif trigger == "survey.answered":
        from automation.surveys.models import Survey

        surveys = session.execute(
            select(Survey.id, Survey.ticket_id, Survey.contact_id)
            .where(_between(Survey.answered_at, since, until))
            .order_by(Survey.answered_at, Survey.id)
            .limit(limit)
        ).all()
        yield from ({"survey_id": s, "ticket_id": t, "contact_id": c} for s, t, c in surveys)
    elif trigger.startswith("order."):
        stmt = select(Order.id, Order.contact_id).where(_between(Order.created_at, since, until))
        if trigger == "order.paid":
            stmt = stmt.where(Order.status.in_([s for s in OrderStatus if s.counts_as_sale]))
        elif trigger == "order.refunded":
            stmt = stmt.where(
                Order.status.in_([OrderStatus.REFUNDED, OrderStatus.PARTIALLY_REFUNDED])
            )
        rows = session.execute(stmt.order_by(Order.created_at, Order.id).limit(limit)).all()
        yield from ({"order_id": o, "contact_id": c} for o, c in rows)
    elif trigger == "contact.created":
        ids = session.scalars(
            select(Contact.id)
            .where(_between(Contact.created_at, since, until), Contact.merged_into_id.is_(None))
            .order_by(Contact.created_at, Contact.id)
            .limit(limit)
        ).all()
        yield from ({"contact_id": i} for i in ids)
    elif trigger == "activity.reported":
        rows = session.execute(
            select(ReportedActivity.id, ReportedActivity.contact_id)
            .where(_between(ReportedActivity.created_at, since, until))
            .order_by(ReportedActivity.created_at, ReportedActivity.id)
            .limit(limit)
        ).all()
        yield from ({"activity_id": a, "contact_id": c} for a, c in rows)
    else:  # ticket.created, ticket.updated and the time triggers: tickets opened in the period
        ids = session.scalars(
            select(Ticket.id)
            .where(_between(Ticket.created_at, since, until), Ticket.merged_into_id.is_(None))
            .order_by(Ticket.created_at, Ticket.id)
            .limit(limit)
        ).all()
        yield from ({"ticket_id": i} for i in ids)


def dry_run(
    rule_json: Any, *, since: datetime, until: datetime, limit: int = DEFAULT_LIMIT
) -> DryRunReport:
    """Replay a rule (saved or not) over the period [since, until) and report what it would do."""
    definition = validate_rule(rule_json)
    trigger = definition["trigger"]["type"]
    check = compile_conditions(definition.get("conditions") or {})
    report = DryRunReport(trigger=trigger, since=since, until=until)
    actor = Actor.automation(None, f"dry run: {definition['name']}")
    savepoint = db.session.begin_nested()
    try:
        refs_list = list(_past_events(trigger, since, until, limit + 1))
        if len(refs_list) > limit:
            report.truncated = True
            refs_list = refs_list[:limit]
        for refs in refs_list:
            subject = load_subject(trigger, refs)
            if subject.ticket is None and "ticket_id" in refs:
                continue
            report.evaluated += 1
            if not check(build_facts(subject), None):
                continue
            report.matched += 1
            if len(report.matched_subjects) < 200:
                report.matched_subjects.append(subject.key)
            if subject.ticket is not None and len(report.matched_ticket_ids) < 200:
                report.matched_ticket_ids.append(subject.ticket.id)
            for action in definition["actions"]:
                report.actions[action["type"]] += 1
                if action["type"] == "issue_incentive":
                    _would_grant(report, action["policy"], subject, actor, definition)
    finally:
        savepoint.rollback()
    return report


def _would_grant(
    report: DryRunReport, policy: str, subject: Any, actor: Actor, definition: dict[str, Any]
) -> None:
    contact = subject.contact
    try:
        from automation.incentives.operations import grant_incentive
    except ImportError:
        if "incentives are not installed" not in report.errors:
            report.errors.append("incentives are not installed")
        return
    try:
        result = grant_incentive(
            policy,
            contact=contact,
            ticket=subject.ticket,
            actor=actor,
            reason=f"dry run of rule '{definition['name']}'",
            key=f"dry-run:{policy}:{subject.key}",
            dry_run=True,
        )
    except Exception as exc:
        message = f"{policy}: {exc}"
        if message not in report.errors and len(report.errors) < 20:
            report.errors.append(message)
        return
    from .actions import grant_outcome

    issued, reason = grant_outcome(result)
    cost, currency = _cost(getattr(result, "cost", None))
    if currency is None and getattr(result, "rewards", None):
        currency = getattr(result.rewards[0], "currency", None)
    report.grants.append(
        DryRunGrant(
            contact_id=contact.id if contact else None,
            contact_name=contact.display_name if contact else "",
            ticket_id=subject.ticket.id if subject.ticket else None,
            policy=policy,
            issued=issued,
            reason=reason,
            cost=cost,
            currency=currency,
        )
    )
