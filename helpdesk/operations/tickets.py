"""Tickets: create, change status, assign, tag, merge. The only place that writes them."""

from __future__ import annotations

from collections.abc import Iterable
from types import EllipsisType
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from helpdesk import events
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import (
    Contact,
    Message,
    Notification,
    Priority,
    Tag,
    Team,
    Ticket,
    TicketStatus,
    User,
    utcnow,
)
from helpdesk.rows import changed_rows

from . import audit
from .contacts import OperationError, coerce_attributes


def create_ticket(
    contact: Contact,
    *,
    actor: Actor,
    channel: str,
    subject: str = "",
    priority: Priority = Priority.NORMAL,
    team: Team | None = None,
    assignee: User | None = None,
    tags: Iterable[str] = (),
    conversation_id: str | None = None,
    language: str | None = None,
    follows_up: Ticket | None = None,
    inbox: str | None = None,
) -> Ticket:
    """Open a ticket for ``contact``. Sends ticket.created after commit."""
    ticket_id = insert_ticket(
        contact.id,
        actor=actor,
        channel=channel,
        subject=subject,
        priority=priority,
        team=team,
        assignee_id=assignee.id if assignee else None,
        conversation_id=conversation_id,
        language=language,
        follows_up_id=follows_up.id if follows_up else None,
        inbox=inbox,
    )
    ticket = db.session.get(Ticket, ticket_id)
    assert ticket is not None, "inserted in this transaction"
    if tags:
        ticket.tags = _tags_named(tags)
        db.session.flush()
    return ticket


_INSERT_TICKET = insert(Ticket.__table__).returning(Ticket.__table__.c.id)


def insert_ticket(
    contact_id: int,
    *,
    actor: Actor,
    channel: str,
    subject: str = "",
    priority: Priority = Priority.NORMAL,
    team: Team | None = None,
    assignee_id: int | None = None,
    conversation_id: str | None = None,
    language: str | None = None,
    follows_up_id: int | None = None,
    inbox: str | None = None,
) -> int:
    """``create_ticket`` without loading the new object (the ingest funnel's way).

    A Core insert, because every new conversation opens a ticket and the ORM
    flush cost several times the insert. Round-robin teams pick the agent here.
    """
    if assignee_id is None and team is not None and team.is_round_robin:
        chosen = next_round_robin_agent(team)
        assignee_id = chosen.id if chosen else None
    db.session.flush()  # rows the caller left pending (the team's round-robin mark) first
    now = utcnow()
    ticket_id: int = (
        db.session.connection()
        .execute(
            _INSERT_TICKET,
            {
                "subject": (subject or "").strip()[:500],
                "status": TicketStatus.NEW,
                "is_active": True,
                "priority": priority,
                "channel": channel,
                "contact_id": contact_id,
                "team_id": team.id if team else None,
                "assignee_id": assignee_id,
                "conversation_id": conversation_id,
                "language": language,
                "inbox": inbox,
                "created_at": now,
                "updated_at": now,
                "last_activity_at": now,
                "follows_up_id": follows_up_id,
                "attributes": {},
            },
        )
        .scalar_one()
    )
    audit.record(
        "ticket.created",
        actor=actor,
        ticket_id=ticket_id,
        contact_id=contact_id,
        channel=channel,
        follows_up=follows_up_id,
    )
    events.on_commit(
        events.TicketCreated(actor=actor, ticket_id=ticket_id, channel=channel, inbox=inbox)
    )
    if assignee_id is not None and not (actor.is_user and actor.id == assignee_id):
        db.session.add(Notification(user_id=assignee_id, kind="assigned", ticket_id=ticket_id))
    return ticket_id


def next_round_robin_agent(team: Team) -> User | None:
    """Return the member after the last one assigned, skipping those away or inactive."""
    # Lock the team row so two tickets created at once do not go to the same agent.
    db.session.execute(select(Team.id).where(Team.id == team.id).with_for_update())
    candidates = [m for m in team.members if m.is_active_user and not m.is_away]
    if not candidates:
        return None
    last = team.last_assigned_user_id
    following = [m for m in candidates if last is None or m.id > last]
    chosen = following[0] if following else candidates[0]
    team.last_assigned_user_id = chosen.id
    return chosen


_TRANSITION_EVENTS = {
    TicketStatus.SOLVED: events.TicketSolved,
    TicketStatus.CLOSED: events.TicketClosed,
}


def set_status(ticket: Ticket, status: TicketStatus, *, actor: Actor) -> Ticket:
    """Move a ticket to ``status``; reopening counts, solving and closing are timed."""
    old = ticket.status
    if old is status:
        return ticket
    now = utcnow()
    ticket.set_status(status)
    ticket.updated_at = now
    if status is TicketStatus.SOLVED:
        ticket.solved_at = now
    elif status is TicketStatus.CLOSED:
        ticket.closed_at = now
        ticket.solved_at = ticket.solved_at or now
    reopened = old.is_done and not status.is_done
    if reopened:
        ticket.reopen_count += 1
        ticket.solved_at = None
        ticket.closed_at = None
    db.session.flush()
    audit.record(
        "ticket.status_changed", actor=actor, ticket_id=ticket.id, old=old.value, new=status.value
    )
    events.on_commit(
        events.TicketUpdated(
            actor=actor, ticket_id=ticket.id, changes={"status": [old.value, status.value]}
        )
    )
    if reopened:
        events.on_commit(events.TicketReopened(actor=actor, ticket_id=ticket.id))
    if status in _TRANSITION_EVENTS:
        events.on_commit(_TRANSITION_EVENTS[status](actor=actor, ticket_id=ticket.id))
    return ticket


def solve_ticket(ticket: Ticket, *, actor: Actor) -> Ticket:
    """Mark the ticket solved. Sends ticket.solved after commit."""
    return set_status(ticket, TicketStatus.SOLVED, actor=actor)


def close_ticket(ticket: Ticket, *, actor: Actor) -> Ticket:
    """Close the ticket and record who closed it. Sends ticket.closed after commit."""
    return set_status(ticket, TicketStatus.CLOSED, actor=actor)


def reopen_ticket(ticket: Ticket, *, actor: Actor) -> Ticket:
    """Reopen a solved or closed ticket. Sends ticket.reopened after commit."""
    return set_status(ticket, TicketStatus.OPEN, actor=actor)


def assign_ticket(
    ticket: Ticket,
    *,
    actor: Actor,
    assignee: User | EllipsisType | None = ...,
    team: Team | EllipsisType | None = ...,
) -> Ticket:
    """Assign to an agent and/or a team (``None`` unassigns; omitted leaves as is)."""
    changes: dict[str, Any] = {}
    if assignee is not ... and (assignee.id if assignee else None) != ticket.assignee_id:
        changes["assignee_id"] = [ticket.assignee_id, assignee.id if assignee else None]
        ticket.assignee = assignee
    if team is not ... and (team.id if team else None) != ticket.team_id:
        changes["team_id"] = [ticket.team_id, team.id if team else None]
        ticket.team = team
    if not changes:
        return ticket
    if ticket.status is TicketStatus.NEW and ticket.assignee is not None:
        ticket.set_status(TicketStatus.OPEN)
        changes["status"] = [TicketStatus.NEW.value, TicketStatus.OPEN.value]
    ticket.updated_at = utcnow()
    db.session.flush()
    audit.record("ticket.assigned", actor=actor, ticket_id=ticket.id, changes=changes)
    events.on_commit(events.TicketUpdated(actor=actor, ticket_id=ticket.id, changes=changes))
    events.on_commit(
        events.TicketAssigned(
            actor=actor, ticket_id=ticket.id, assignee_id=ticket.assignee_id, team_id=ticket.team_id
        )
    )
    if "assignee_id" in changes and ticket.assignee_id is not None:
        _notify_assignment(ticket, actor)
    return ticket


def _notify_assignment(ticket: Ticket, actor: Actor) -> None:
    if actor.is_user and actor.id == ticket.assignee_id:
        return
    db.session.add(Notification(user_id=ticket.assignee_id, kind="assigned", ticket_id=ticket.id))


def set_priority(ticket: Ticket, priority: Priority, *, actor: Actor) -> Ticket:
    """Change the ticket's priority."""
    if ticket.priority is priority:
        return ticket
    old = ticket.priority
    ticket.priority = priority
    ticket.updated_at = utcnow()
    db.session.flush()
    audit.record(
        "ticket.priority_changed",
        actor=actor,
        ticket_id=ticket.id,
        old=old.value,
        new=priority.value,
    )
    events.on_commit(
        events.TicketUpdated(
            actor=actor, ticket_id=ticket.id, changes={"priority": [old.value, priority.value]}
        )
    )
    return ticket


def _tags_named(names: Iterable[str]) -> list[Tag]:
    wanted = sorted({n.strip().lower()[:64] for n in names if n and n.strip()})
    if not wanted:
        return []
    existing = {t.name: t for t in db.session.scalars(select(Tag).where(Tag.name.in_(wanted)))}
    tags = []
    for name in wanted:
        tag = existing.get(name)
        if tag is None:
            # Two requests may create the same tag at once; the savepoint keeps the loser alive.
            try:
                with db.session.begin_nested():
                    tag = Tag(name=name)
                    db.session.add(tag)
            except IntegrityError:
                tag = db.session.execute(select(Tag).where(Tag.name == name)).scalar_one()
        tags.append(tag)
    return tags


def set_tags(ticket: Ticket, names: Iterable[str], *, actor: Actor) -> Ticket:
    """Replace the ticket's tags with ``names`` (normalised to lower case)."""
    tags = _tags_named(names)
    old = sorted(t.name for t in ticket.tags)
    new = sorted(t.name for t in tags)
    if old == new:
        return ticket
    ticket.tags = tags
    ticket.updated_at = utcnow()
    db.session.flush()
    audit.record("ticket.tagged", actor=actor, ticket_id=ticket.id, old=old, new=new)
    events.on_commit(
        events.TicketUpdated(actor=actor, ticket_id=ticket.id, changes={"tags": [old, new]})
    )
    return ticket


def add_tags(ticket: Ticket, names: Iterable[str], *, actor: Actor) -> Ticket:
    """Add tags, keeping the existing ones."""
    return set_tags(ticket, [*(t.name for t in ticket.tags), *names], actor=actor)


def set_ticket_attributes(ticket: Ticket, values: dict[str, Any], *, actor: Actor) -> Ticket:
    """Set typed custom attributes on a ticket."""
    merged = {**(ticket.attributes or {}), **coerce_attributes("ticket", values)}
    if merged == ticket.attributes:
        return ticket
    old = ticket.attributes
    ticket.attributes = merged
    ticket.updated_at = utcnow()
    db.session.flush()
    audit.record("ticket.attributes_changed", actor=actor, ticket_id=ticket.id, old=old, new=merged)
    events.on_commit(
        events.TicketUpdated(
            actor=actor, ticket_id=ticket.id, changes={"attributes": [old, merged]}
        )
    )
    return ticket


def merge_tickets(source: Ticket, target: Ticket, *, actor: Actor) -> Ticket:
    """Fold ``source`` into ``target``: its messages move, it is closed and points at target."""
    if source.id == target.id:
        raise OperationError("a ticket cannot be merged into itself")
    if source.merged_into_id is not None:
        raise OperationError(f"ticket #{source.id} was already merged")
    moved = changed_rows(
        update(Message).where(Message.ticket_id == source.id).values(ticket_id=target.id)
    )
    target.tags = _tags_named([*(t.name for t in target.tags), *(t.name for t in source.tags)])
    target.last_activity_at = max(target.last_activity_at, source.last_activity_at)
    target.updated_at = utcnow()
    source.merged_into_id = target.id
    set_status(source, TicketStatus.CLOSED, actor=actor)
    db.session.flush()
    db.session.expire(target, ["tags"])
    audit.record(
        "ticket.merged", actor=actor, ticket_id=target.id, merged_ticket=source.id, messages=moved
    )
    audit.record("ticket.merged_away", actor=actor, ticket_id=source.id, into=target.id)
    events.on_commit(events.TicketsMerged(actor=actor, ticket_id=target.id, merged_id=source.id))
    return target


def mark_read(ticket: Ticket, *, actor: Actor) -> None:
    """Clear the unread marker when the assignee (or anyone, if unassigned) opens it."""
    if not ticket.is_unread:
        return
    if ticket.assignee_id is not None and actor.id != ticket.assignee_id:
        return
    ticket.is_unread = False
    db.session.flush()


def get_ticket(ticket_id: int) -> Ticket | None:
    """Return the ticket, following merges to the one that was kept."""
    ticket = db.session.get(Ticket, ticket_id)
    seen = set()
    while ticket is not None and ticket.merged_into_id and ticket.id not in seen:
        seen.add(ticket.id)
        ticket = db.session.get(Ticket, ticket.merged_into_id)
    return ticket
