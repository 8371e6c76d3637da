"""A contact's history across channels: tickets, messages, orders and audit events, newest first."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import format_currency
from flask_babel import gettext as _
from sqlalchemy import and_, not_, or_, select
from sqlalchemy.orm import selectinload

from helpdesk.extensions import db
from helpdesk.models import AuditEvent, Contact, Direction, Message, Order, Ticket

PER_PAGE = 40
#: Deeper pages cost one query per source of ``page * PER_PAGE`` rows; stop somewhere sane.
MAX_PAGE = 25
SNIPPET = 180

#: Audit actions that only repeat an entry the timeline already shows from its own table.
_SHOWN_ELSEWHERE = ("message.replied", "message.noted")

Describer = Callable[[AuditEvent], str | None]
#: Sentences for audit actions other packages own, by the action's first part
#: (``points`` for ``points.earned``); the owner knows what its data means.
_DESCRIBERS: dict[str, Describer] = {}


def describe_actions(*prefixes: str) -> Callable[[Describer], Describer]:
    """Register how audit actions under ``prefixes`` read on the timeline."""

    def register(describer: Describer) -> Describer:
        for prefix in prefixes:
            _DESCRIBERS[prefix] = describer
        return describer

    return register


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of history. ``kind`` is ticket, message, order or event."""

    kind: str
    at: datetime
    title: str
    detail: str = ""
    channel: str | None = None
    ticket_id: int | None = None
    actor: str = ""
    #: ``inbound``, ``outbound`` or ``note`` for messages; the action for events.
    variant: str = ""
    #: Sorts entries with the same timestamp: a ticket's first message above the ticket.
    sort_id: tuple[int, int] = (0, 0)


@dataclass(frozen=True, slots=True)
class TimelinePage:
    entries: list[TimelineEntry]
    page: int
    has_next: bool

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def contact_timeline(contact: Contact, *, page: int = 1, per_page: int = PER_PAGE) -> TimelinePage:
    """Return one page of ``contact``'s history across every channel, newest first."""
    page = max(1, min(page, MAX_PAGE))
    wanted = page * per_page + 1
    sources = (
        _tickets(contact, wanted),
        _messages(contact, wanted),
        _orders(contact, wanted),
        _events(contact, wanted),
    )
    merged = heapq.merge(*sources, key=lambda e: (e.at, e.sort_id), reverse=True)
    entries = list(_take(merged, wanted))
    start = (page - 1) * per_page
    return TimelinePage(
        entries=entries[start : start + per_page],
        page=page,
        has_next=len(entries) > page * per_page and page < MAX_PAGE,
    )


def _take(entries: Iterable[TimelineEntry], n: int) -> Iterator[TimelineEntry]:
    for i, entry in enumerate(entries):
        if i >= n:
            return
        yield entry


def _ticket_ids(contact: Contact) -> Any:
    return select(Ticket.id).where(Ticket.contact_id == contact.id).scalar_subquery()


def _tickets(contact: Contact, limit: int) -> list[TimelineEntry]:
    rows = db.session.scalars(
        select(Ticket)
        .where(Ticket.contact_id == contact.id)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(limit)
    )
    return [
        TimelineEntry(
            kind="ticket",
            at=t.created_at,
            title=_("Ticket #%(number)s opened", number=t.number),
            detail=t.subject,
            channel=t.channel,
            ticket_id=t.id,
            variant=t.status.value,
            sort_id=(0, t.id),
        )
        for t in rows
    ]


def _messages(contact: Contact, limit: int) -> list[TimelineEntry]:
    rows = db.session.scalars(
        select(Message)
        .options(selectinload(Message.author))
        .where(or_(Message.ticket_id.in_(_ticket_ids(contact)), Message.contact_id == contact.id))
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    )
    entries = []
    for m in rows:
        author = m.author.name if m.author is not None else ""
        if m.direction is Direction.INBOUND:
            title = _("Customer wrote")
        elif m.direction is Direction.NOTE:
            title = _("Internal note by %(name)s", name=author or _("an agent"))
        elif m.is_by_automation or m.author_kind == "automation":
            title = _("Automatic reply")
        else:
            title = _("%(name)s replied", name=author or _("An agent"))
        text = " ".join((m.display_text or "").split())
        entries.append(
            TimelineEntry(
                kind="message",
                at=m.created_at,
                title=title,
                detail=text[:SNIPPET] + ("…" if len(text) > SNIPPET else ""),
                channel=m.channel,
                ticket_id=m.ticket_id,
                actor=author,
                variant=m.direction.value,
                sort_id=(1, m.id),
            )
        )
    return entries


def _orders(contact: Contact, limit: int) -> list[TimelineEntry]:
    rows = db.session.scalars(
        select(Order)
        .where(Order.contact_id == contact.id)
        .order_by(Order.placed_at.desc(), Order.id.desc())
        .limit(limit)
    )
    return [
        TimelineEntry(
            kind="order",
            at=o.placed_at,
            title=_("Order %(number)s placed", number=o.external_id),
            detail=format_currency(o.total, o.currency),
            variant=o.status.value,
            sort_id=(2, o.id),
        )
        for o in rows
    ]


def _events(contact: Contact, limit: int) -> list[TimelineEntry]:
    ticket_ids = _ticket_ids(contact)
    rows = db.session.scalars(
        select(AuditEvent)
        .where(
            or_(AuditEvent.contact_id == contact.id, AuditEvent.ticket_id.in_(ticket_ids)),
            AuditEvent.action.not_in(_SHOWN_ELSEWHERE),
            # The ticket entry itself says it was opened, as long as the ticket is still here.
            not_(and_(AuditEvent.action == "ticket.created", AuditEvent.ticket_id.in_(ticket_ids))),
        )
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    return [
        TimelineEntry(
            kind="event",
            at=e.created_at,
            title=describe_event(e),
            ticket_id=e.ticket_id,
            actor=e.actor_label,
            variant=e.action,
            sort_id=(3, e.id),
        )
        for e in rows
    ]


def describe_event(event: AuditEvent) -> str:
    """Say in words what an audit entry records."""
    d = event.data or {}
    action = event.action
    describer = _DESCRIBERS.get(action.partition(".")[0])
    if describer is not None and (sentence := describer(event)):
        return sentence
    if action == "contact.created":
        return _("Contact created")
    if action == "contact.updated":
        fields = ", ".join(sorted((d.get("changes") or {}).keys()))
        return _("Contact details changed (%(fields)s)", fields=fields)
    if action == "contact.identity_added":
        return _("Added %(kind)s %(value)s", kind=d.get("kind", ""), value=d.get("value", ""))
    if action == "contact.merged":
        moved = d.get("moved") or {}
        return _(
            "Contact #%(id)s %(name)s merged into this one: %(identities)s identities, "
            "%(tickets)s tickets and %(orders)s orders moved here",
            id=d.get("merged_contact_id"),
            name=d.get("merged_name") or "",
            identities=moved.get("identities", 0),
            tickets=moved.get("tickets", 0),
            orders=moved.get("orders", 0),
        )
    if action == "contact.merged_away":
        return _(
            "Merged into contact #%(id)s; identities, tickets and orders moved there",
            id=d.get("into"),
        )
    if action == "ticket.created":
        return _("Ticket #%(number)s opened", number=event.ticket_id)
    if action == "ticket.status_changed":
        return _(
            "Ticket #%(number)s: %(old)s → %(new)s",
            number=event.ticket_id,
            old=d.get("old", ""),
            new=d.get("new", ""),
        )
    if action == "ticket.assigned":
        return _("Ticket #%(number)s assigned", number=event.ticket_id)
    if action == "ticket.priority_changed":
        return _(
            "Ticket #%(number)s priority: %(old)s → %(new)s",
            number=event.ticket_id,
            old=d.get("old", ""),
            new=d.get("new", ""),
        )
    if action == "ticket.tagged":
        return _(
            "Ticket #%(number)s tags: %(tags)s",
            number=event.ticket_id,
            tags=", ".join(d.get("new") or []) or "—",
        )
    if action == "ticket.merged":
        return _(
            "Ticket #%(other)s merged into ticket #%(number)s",
            other=d.get("merged_ticket"),
            number=event.ticket_id,
        )
    if event.ticket_id is not None:
        return _("Ticket #%(number)s: %(action)s", number=event.ticket_id, action=action)
    return action
