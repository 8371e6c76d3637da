"""The inbox lists: filters, keyset pagination and cheap capped counts.

Every list is ordered by ``(last_activity_at desc, id desc)`` and each view is
written so that one of the ticket indexes serves both the filter and the order:

=============  ============================================  ==========================
view           filter                                        index
=============  ============================================  ==========================
open           is_active                                     ix_tickets_queue
mine           assignee_id = me, is_active                   ix_tickets_assignee_queue
unassigned     assignee_id IS NULL, is_active                ix_tickets_assignee_queue
team filter    team_id = t, is_active                        ix_tickets_team_queue
pending        status = pending                              ix_tickets_status_activity
solved         status = solved                               ix_tickets_status_activity
closed         status = closed                               ix_tickets_status_activity
=============  ============================================  ==========================

Pages continue from a cursor (the last row's activity time and id), never from
an OFFSET, so a page costs the same on page 1 and page 1000 and a ticket that
moves while someone pages does not make rows repeat.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import selectinload

from helpdesk.extensions import db
from helpdesk.models import Contact, Tag, Ticket, TicketStatus, ticket_tags

PAGE_SIZE = 50
#: Counts stop at this many rows and show as "999+"; counting 1M rows is not worth it.
COUNT_CAP = 1000
#: Channels the filters offer; a ticket's channel is one of these names.
CHANNELS = ("email", "webchat", "sms", "whatsapp", "voice", "telegram", "api")

VIEWS = ("mine", "unassigned", "open", "pending", "solved", "closed")
_STATUS_VIEWS = {
    "pending": TicketStatus.PENDING,
    "solved": TicketStatus.SOLVED,
    "closed": TicketStatus.CLOSED,
}


@dataclass(frozen=True, slots=True)
class ListFilters:
    """What an inbox list shows; also what a saved view stores (``as_dict``)."""

    view: str = "open"
    channel: str | None = None
    tag: str | None = None
    team_id: int | None = None
    assignee_id: int | None = None
    q: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ListFilters:
        """Parse request args or saved-view JSON; unknown or malformed values are ignored."""
        view = str(data.get("view") or "open")
        channel = str(data.get("channel") or "").strip().lower() or None
        tag = str(data.get("tag") or "").strip().lower()[:64] or None
        q = str(data.get("q") or "").strip()[:200] or None
        return cls(
            view=view if view in VIEWS else "open",
            channel=channel if channel in CHANNELS else None,
            tag=tag,
            team_id=int_or_none(data.get("team")),
            assignee_id=int_or_none(data.get("assignee")),
            q=q,
        )

    def as_args(self) -> dict[str, Any]:
        """Return the query-string form (the inverse of ``from_mapping``), without blanks."""
        args = {
            "view": self.view,
            "channel": self.channel,
            "tag": self.tag,
            "team": self.team_id,
            "assignee": self.assignee_id,
            "q": self.q,
        }
        return {k: v for k, v in args.items() if v is not None}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_view(self, view: str) -> ListFilters:
        return replace(self, view=view)


def int_or_none(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


@dataclass(frozen=True, slots=True)
class TicketPage:
    tickets: Sequence[Ticket]
    next_cursor: str | None


def encode_cursor(ticket: Ticket) -> str:
    raw = f"{ticket.last_activity_at.astimezone(UTC).isoformat()}|{ticket.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    """Return ``(last_activity_at, id)`` from a cursor, or None if it is missing or malformed."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at_text, id_text = raw.split("|", 1)
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return at, int(id_text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def _scope(stmt: Select[Any], filters: ListFilters, user_id: int | None) -> Select[Any]:
    """Apply the view and the filters; the view picks the index."""
    view = filters.view
    if view in _STATUS_VIEWS:
        stmt = stmt.where(Ticket.status == _STATUS_VIEWS[view])
    else:
        stmt = stmt.where(Ticket.is_active.is_(True))
        if view == "mine":
            stmt = stmt.where(Ticket.assignee_id == (user_id or 0))
        elif view == "unassigned":
            stmt = stmt.where(Ticket.assignee_id.is_(None))
    if filters.assignee_id is not None and view not in ("mine", "unassigned"):
        stmt = stmt.where(Ticket.assignee_id == filters.assignee_id)
    if filters.team_id is not None:
        stmt = stmt.where(Ticket.team_id == filters.team_id)
    if filters.channel is not None:
        stmt = stmt.where(Ticket.channel == filters.channel)
    if filters.tag is not None:
        stmt = stmt.where(
            exists()
            .where(ticket_tags.c.ticket_id == Ticket.id)
            .where(
                ticket_tags.c.tag_id
                == select(Tag.id).where(Tag.name == filters.tag).scalar_subquery()
            )
        )
    # Merged-away tickets are closed; they only clutter the closed list.
    if view == "closed":
        stmt = stmt.where(Ticket.merged_into_id.is_(None))
    return stmt


def list_tickets(
    filters: ListFilters,
    *,
    user_id: int | None,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
) -> TicketPage:
    """Return one page of tickets for ``filters``, newest activity first, and the next cursor."""
    stmt = _scope(select(Ticket), filters, user_id)
    after = decode_cursor(cursor)
    if after is not None:
        at, last_id = after
        # The redundant ``<=`` is the index range; the OR only breaks ties on equal times.
        stmt = stmt.where(
            Ticket.last_activity_at <= at,
            or_(
                Ticket.last_activity_at < at,
                and_(Ticket.last_activity_at == at, Ticket.id < last_id),
            ),
        )
    stmt = (
        stmt.order_by(Ticket.last_activity_at.desc(), Ticket.id.desc())
        .limit(limit + 1)
        .options(
            selectinload(Ticket.contact).selectinload(Contact.identities),
            selectinload(Ticket.assignee),
            selectinload(Ticket.tags),
        )
    )
    rows = list(db.session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return TicketPage(rows, encode_cursor(rows[-1]) if more and rows else None)


def count_tickets(filters: ListFilters, *, user_id: int | None, cap: int = COUNT_CAP) -> int:
    """Count the view's tickets, stopping at ``cap``: a huge queue costs what a small one does."""
    inner = _scope(select(Ticket.id), filters, user_id).limit(cap).subquery()
    return int(db.session.scalar(select(func.count()).select_from(inner)) or 0)


def format_count(count: int, cap: int = COUNT_CAP) -> str:
    return f"{cap - 1}+" if count >= cap else str(count)


def search_ticket_ids(query: str, *, limit: int = 50) -> list[int]:
    """Full-text search when ``helpdesk.search`` is there; a subject match until then."""
    try:
        from helpdesk.search import search_tickets  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return list(
            db.session.scalars(
                select(Ticket.id)
                .where(Ticket.subject.ilike(pattern, escape="\\"), Ticket.merged_into_id.is_(None))
                .order_by(Ticket.last_activity_at.desc(), Ticket.id.desc())
                .limit(limit)
            )
        )
    return list(search_tickets(query, limit=limit))


def search_page(query: str, *, limit: int = PAGE_SIZE) -> TicketPage:
    """Return the tickets matching ``query``, best first (no further pages)."""
    ids = search_ticket_ids(query, limit=limit)
    if not ids:
        return TicketPage([], None)
    found = {
        t.id: t
        for t in db.session.scalars(
            select(Ticket)
            .where(Ticket.id.in_(ids))
            .options(
                selectinload(Ticket.contact).selectinload(Contact.identities),
                selectinload(Ticket.assignee),
                selectinload(Ticket.tags),
            )
        )
    }
    return TicketPage([found[i] for i in ids if i in found], None)
