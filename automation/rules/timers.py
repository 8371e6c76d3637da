"""Time-based triggers, checked by a periodic job.

Each candidate ticket has a *window*: the moment it went pending, the agent
reply still waiting for an answer, the due time being approached. A rule fires
at most once per ticket and window: the firing inserts a row with a unique key
(``rule:ticket:window``) in the same transaction as the actions, so a second
check, or a second worker, finds the key and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from helpdesk.extensions import db
from helpdesk.jobs import periodic
from helpdesk.models import AuditEvent, Direction, Message, Ticket, TicketStatus, utcnow

from .engine import cache, execute
from .facts import build_facts, load_subject
from .models import Rule, RuleFiring, RuleVersion
from .schema import TIME_TRIGGERS

log = logging.getLogger(__name__)

#: Tickets considered per rule per check; the rest wait for the next check.
BATCH = 500


def _pending_windows(hours: float, now: datetime) -> Iterator[tuple[int, str]]:
    """Pending tickets whose last status change (to pending) is at least ``hours`` old."""
    cutoff = now - timedelta(hours=hours)
    since = func.max(AuditEvent.created_at)
    rows = db.session.execute(
        select(AuditEvent.ticket_id, func.max(AuditEvent.id))
        .where(
            AuditEvent.action == "ticket.status_changed",
            AuditEvent.ticket_id.in_(
                select(Ticket.id).where(
                    Ticket.status == TicketStatus.PENDING, Ticket.merged_into_id.is_(None)
                )
            ),
        )
        .group_by(AuditEvent.ticket_id)
        .having(since <= cutoff)
        .limit(BATCH)
    ).all()
    for ticket_id, change_id in rows:
        # The status change that made it pending names the window.
        # ``ticket_id IN (...)`` never matches NULL.
        yield cast(int, ticket_id), f"pending:{change_id}"


def _no_reply_windows(days: float, now: datetime) -> Iterator[tuple[int, str]]:
    """Open tickets whose last conversation message is ours and at least ``days`` old."""
    cutoff = now - timedelta(days=days)
    last = (
        select(Message.ticket_id, func.max(Message.id).label("last_id"))
        .where(Message.direction != Direction.NOTE)
        .group_by(Message.ticket_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Ticket.id, Message.id)
        .join(last, last.c.ticket_id == Ticket.id)
        .join(Message, Message.id == last.c.last_id)
        .where(
            Ticket.status.in_([TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING]),
            Ticket.merged_into_id.is_(None),
            Message.direction == Direction.OUTBOUND,
            Message.created_at <= cutoff,
        )
        .limit(BATCH)
    ).all()
    for ticket_id, message_id in rows:
        yield ticket_id, f"noreply:{message_id}"


def _due_windows(hours: float, target: str, now: datetime) -> Iterator[tuple[int, str]]:
    """Tickets whose SLA target falls due within ``hours`` and is neither met nor breached."""
    from automation.sla.models import TicketSla

    if target == "first_response":
        due, done, breached = (
            TicketSla.first_response_due_at,
            TicketSla.first_response_met_at,
            TicketSla.first_response_breached_at,
        )
    else:
        due, done, breached = (
            TicketSla.resolution_due_at,
            TicketSla.resolved_at,
            TicketSla.resolution_breached_at,
        )
    conditions = [
        due.is_not(None),
        due > now,
        due <= now + timedelta(hours=hours),
        done.is_(None),
        breached.is_(None),
    ]
    if target == "resolution":
        conditions.append(TicketSla.paused_at.is_(None))
    rows = db.session.execute(
        select(TicketSla.ticket_id, due).where(*conditions).limit(BATCH)
    ).all()
    for ticket_id, due_at in rows:
        due_at = cast(datetime, due_at)  # the query skips rows without a due date
        yield ticket_id, f"due:{target}:{due_at.strftime('%Y%m%dT%H%M%S')}"


def windows_for(trigger: dict[str, Any], now: datetime) -> Iterator[tuple[int, str]]:
    kind = trigger["type"]
    if kind == "ticket.pending_for":
        return _pending_windows(trigger["hours"], now)
    if kind == "ticket.no_customer_reply":
        return _no_reply_windows(trigger["days"], now)
    return _due_windows(trigger["hours"], trigger.get("target", "resolution"), now)


def run_time_rules(now: datetime | None = None) -> int:
    """Check every enabled time rule; returns how many times a rule fired."""
    now = now or utcnow()
    rows = db.session.execute(
        select(Rule, RuleVersion)
        .join(RuleVersion, RuleVersion.id == Rule.current_version_id)
        .where(Rule.trigger_type.in_(list(TIME_TRIGGERS)), Rule.is_enabled.is_(True))
        .order_by(Rule.position, Rule.id)
    ).all()
    fired = 0
    for rule, version in rows:
        compiled = cache.get(version)
        candidates = list(windows_for(compiled.trigger, now))
        keys = {f"rule{rule.id}:ticket{tid}:{window}": tid for tid, window in candidates}
        done = (
            set(db.session.scalars(select(RuleFiring.key).where(RuleFiring.key.in_(list(keys)))))
            if keys
            else set()
        )
        rule_id = rule.id
        db.session.commit()
        for key, ticket_id in keys.items():
            if key in done:
                continue
            fired += _fire_once(rule_id, version.id, key, ticket_id, now)
    return fired


def _fire_once(rule_id: int, version_id: int, key: str, ticket_id: int, now: datetime) -> int:
    rule = db.session.get(Rule, rule_id)
    version = db.session.get(RuleVersion, version_id)
    if rule is None or version is None or not rule.is_enabled:
        db.session.rollback()
        return 0
    compiled = cache.get(version)
    subject = load_subject(
        compiled.trigger["type"], {"ticket_id": ticket_id, "actor_kind": "system"}
    )
    if subject.ticket is None:
        db.session.rollback()
        return 0
    trace: list[dict[str, Any]] = []
    if not compiled.check(build_facts(subject, now=now), trace):
        db.session.rollback()
        return 0
    try:
        with db.session.begin_nested():
            db.session.add(RuleFiring(key=key, rule_id=rule_id, ticket_id=ticket_id))
    except IntegrityError:  # another worker fired it first
        db.session.rollback()
        return 0
    execute(rule, compiled, subject, trace, compiled.trigger["type"])
    db.session.commit()
    return 1


@periodic(minute="*/5")
def run_time_rules_periodically() -> int:
    """Every five minutes: fire time-based rules whose window has come."""
    return run_time_rules()
