"""SLA clocks: set due times when a ticket opens, pause while it waits on the customer,
stop when answered or solved, and mark breaches once."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, cast

from sqlalchemy import select, update

from helpdesk import events
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Ticket, TicketStatus, utcnow
from helpdesk.operations import audit
from helpdesk.readcache import ReadCache
from helpdesk.rows import changed_rows

from .events import SlaFirstResponseBreached, SlaResolutionBreached
from .hours import Calendar, CalendarError, add_business_minutes, business_minutes_between
from .models import BusinessCalendar, SlaPolicy, TicketSla

log = logging.getLogger(__name__)
SLA_ACTOR = Actor.system("sla")


class SlaError(ValueError):
    """An SLA policy or calendar that cannot be saved; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


# ------------------------------------------------------------------ setup


def save_calendar(
    *,
    name: str,
    timezone: str,
    hours: dict[str, Any],
    holidays: list[str] | None = None,
    calendar: BusinessCalendar | None = None,
) -> BusinessCalendar:
    """Create or change a business-hours calendar after checking it."""
    if not name.strip():
        raise SlaError("name", "a calendar needs a name")
    try:
        Calendar.from_json(timezone, hours, holidays or [])
    except CalendarError as exc:
        raise SlaError(exc.field, str(exc).split(": ", 1)[-1]) from None
    calendar = calendar or BusinessCalendar()
    calendar.name = name.strip()
    calendar.timezone = timezone
    calendar.hours = hours
    calendar.holidays = sorted(holidays or [])
    db.session.add(calendar)
    db.session.flush()
    return calendar


def save_policy(
    *,
    name: str,
    first_response_minutes: int | None,
    resolution_minutes: int | None,
    priorities: list[str] | None = None,
    channels: list[str] | None = None,
    calendar: BusinessCalendar | None = None,
    pause_when_pending: bool = True,
    position: int | None = None,
    policy: SlaPolicy | None = None,
) -> SlaPolicy:
    """Create or change an SLA policy; the first matching enabled policy applies to a ticket."""
    if not name.strip():
        raise SlaError("name", "a policy needs a name")
    for field, value in (
        ("first_response_minutes", first_response_minutes),
        ("resolution_minutes", resolution_minutes),
    ):
        if value is not None and value <= 0:
            raise SlaError(field, "must be a positive number of minutes")
    if first_response_minutes is None and resolution_minutes is None:
        raise SlaError("first_response_minutes", "give at least one target")
    policy = policy or SlaPolicy()
    policy.name = name.strip()
    policy.first_response_minutes = first_response_minutes
    policy.resolution_minutes = resolution_minutes
    policy.priorities = list(priorities or [])
    policy.channels = list(channels or [])
    policy.calendar = calendar
    policy.pause_when_pending = pause_when_pending
    if position is not None:
        policy.position = position
    db.session.add(policy)
    db.session.flush()
    return policy


def _calendar(policy: SlaPolicy) -> Calendar:
    if policy.calendar is None:
        return Calendar.always_open()
    return policy.calendar.to_calendar()


def select_policy(ticket: Ticket) -> SlaPolicy | None:
    """The first enabled policy, in order, that matches the ticket."""
    for policy in db.session.scalars(
        select(SlaPolicy)
        .where(SlaPolicy.is_enabled.is_(True))
        .order_by(SlaPolicy.position, SlaPolicy.id)
    ):
        if policy.matches(priority=ticket.priority.value, channel=ticket.channel):
            return policy
    return None


def _any_enabled_policy() -> bool:
    return (
        db.session.scalar(select(SlaPolicy.id).where(SlaPolicy.is_enabled.is_(True)).limit(1))
        is not None
    )


#: Every new ticket asks; another process sees a policy change within ``ttl`` seconds.
_has_policies = ReadCache("sla.has_policies", _any_enabled_policy, ttl=5.0, models=(SlaPolicy,))


def has_policies() -> bool:
    """Whether any enabled policy exists (cached per app, see helpdesk.readcache)."""
    return _has_policies.get()


# ------------------------------------------------------------------ clocks


def _set_due_times(clock: TicketSla, ticket: Ticket, policy: SlaPolicy) -> None:
    calendar = _calendar(policy)
    start = ticket.created_at
    clock.policy_id = policy.id
    clock.first_response_due_at = (
        add_business_minutes(start, policy.first_response_minutes, calendar)
        if policy.first_response_minutes
        else None
    )
    clock.resolution_due_at = (
        add_business_minutes(
            start, policy.resolution_minutes + (clock.paused_minutes or 0), calendar
        )
        if policy.resolution_minutes
        else None
    )


def start_clock(ticket: Ticket) -> TicketSla | None:
    """Set the ticket's due times from the policy that matches it (none: no clock)."""
    policy = select_policy(ticket)
    clock = db.session.get(TicketSla, ticket.id)
    if policy is None:
        return clock
    if clock is None:
        clock = TicketSla(ticket_id=ticket.id, paused_minutes=0.0)
        db.session.add(clock)
    _set_due_times(clock, ticket, policy)
    if ticket.first_response_at is not None and clock.first_response_met_at is None:
        clock.first_response_met_at = ticket.first_response_at
    clock.updated_at = utcnow()
    db.session.flush()
    return clock


def reapply_policy(ticket: Ticket) -> TicketSla | None:
    """Priority or channel changed: the matching policy (and so the due times) may differ."""
    return start_clock(ticket)


def record_first_response(ticket: Ticket, at: datetime) -> None:
    clock = db.session.get(TicketSla, ticket.id)
    if clock is not None and clock.first_response_met_at is None:
        clock.first_response_met_at = at
        clock.updated_at = utcnow()
        db.session.flush()


def record_status(ticket: Ticket, old: str, new: str, *, now: datetime | None = None) -> None:
    """Pause, resume, stop or restart the resolution clock after a status change."""
    clock = db.session.get(TicketSla, ticket.id)
    if clock is None:
        return
    now = now or utcnow()
    policy = clock.policy
    pending = TicketStatus.PENDING.value
    done = (TicketStatus.SOLVED.value, TicketStatus.CLOSED.value)
    if clock.paused_at is not None and new != pending:
        calendar = _calendar(policy) if policy else Calendar.always_open()
        clock.paused_minutes = (clock.paused_minutes or 0) + business_minutes_between(
            clock.paused_at, now, calendar
        )
        clock.paused_at = None
        if policy is not None:
            _set_due_times(clock, ticket, policy)
    if (
        new == pending
        and policy is not None
        and policy.pause_when_pending
        and clock.paused_at is None
    ):
        clock.paused_at = now
    if new in done:
        clock.resolved_at = clock.resolved_at or now
    elif old in done:
        clock.resolved_at = None
    clock.updated_at = now
    db.session.flush()


def check_breaches(now: datetime | None = None) -> dict[str, int]:
    """Mark due times that passed; each breach is marked and announced once."""
    now = now or utcnow()
    counts = {"first_response": 0, "resolution": 0}
    targets = (
        (
            "first_response",
            TicketSla.first_response_due_at,
            TicketSla.first_response_met_at,
            TicketSla.first_response_breached_at,
            SlaFirstResponseBreached,
            (),
        ),
        (
            "resolution",
            TicketSla.resolution_due_at,
            TicketSla.resolved_at,
            TicketSla.resolution_breached_at,
            SlaResolutionBreached,
            (TicketSla.paused_at.is_(None),),
        ),
    )
    for name, due, done, breached, event_cls, extra in targets:
        rows = db.session.execute(
            select(TicketSla.ticket_id, due)
            .where(due.is_not(None), due <= now, done.is_(None), breached.is_(None), *extra)
            .limit(1000)
        ).all()
        for ticket_id, due_at in rows:
            due_at = cast(datetime, due_at)  # the query skips rows without a due date
            # The conditional update makes the breach fire once even with two workers.
            marked = changed_rows(
                update(TicketSla)
                .where(TicketSla.ticket_id == ticket_id, breached.is_(None))
                .values({breached.key: now})
                .execution_options(synchronize_session=False)
            )
            if not marked:
                continue
            counts[name] += 1
            audit.record(
                f"sla.{name}_breached",
                actor=SLA_ACTOR,
                ticket_id=ticket_id,
                due_at=due_at.isoformat(),
            )
            events.on_commit(event_cls(actor=SLA_ACTOR, ticket_id=ticket_id, due_at=due_at))
    db.session.commit()
    return counts


def ticket_clock(ticket_id: int) -> TicketSla | None:
    return db.session.get(TicketSla, ticket_id)
