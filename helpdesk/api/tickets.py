"""Tickets: list, read, change, reply and add notes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import jsonify, request
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import selectinload

from helpdesk.extensions import db
from helpdesk.models import (
    Message,
    Priority,
    Tag,
    Team,
    Ticket,
    TicketStatus,
    User,
)
from helpdesk.operations.messages import add_note, reply_to_ticket
from helpdesk.operations.tickets import (
    assign_ticket,
    get_ticket,
    set_priority,
    set_status,
    set_tags,
    set_ticket_attributes,
)

from .auth import current_actor, current_token, token_required
from .base import (
    ApiError,
    Fields,
    bp,
    decode_cursor,
    encode_cursor,
    invalid,
    json_body,
    not_found,
    page,
    page_size,
    query_int,
)
from .serializers import message_json, ticket_json

PATCH_FIELDS = ("status", "priority", "assignee_id", "team_id", "tags", "attributes")
MAX_IDEMPOTENCY_KEY = 64


def load_ticket(ticket_id: int) -> Ticket:
    ticket = get_ticket(ticket_id)
    if ticket is None:
        raise not_found("ticket", ticket_id)
    return ticket


@bp.get("/tickets")
@token_required("tickets:read")
def list_tickets():
    size = page_size()
    query = select(Ticket).where(Ticket.merged_into_id.is_(None))
    statuses = [s for s in request.args.get("status", "").split(",") if s]
    if statuses:
        try:
            query = query.where(Ticket.status.in_([TicketStatus(s) for s in statuses]))
        except ValueError:
            allowed = ", ".join(s.value for s in TicketStatus)
            raise invalid("status", f"'status' must be one of: {allowed}") from None
    if channel := request.args.get("channel"):
        query = query.where(Ticket.channel == channel)
    for name, column in (
        ("assignee_id", Ticket.assignee_id),
        ("team_id", Ticket.team_id),
        ("contact_id", Ticket.contact_id),
    ):
        value = query_int(name)
        if value is not None:
            query = query.where(column == value)
    if tag := request.args.get("tag"):
        query = query.where(Ticket.tags.any(Tag.name == tag.strip().lower()))
    after = decode_cursor(request.args.get("cursor"), datetime, int)
    if after is not None:
        last_at, last_id = after
        query = query.where(
            or_(
                Ticket.last_activity_at < last_at,
                and_(Ticket.last_activity_at == last_at, Ticket.id < last_id),
            )
        )
    query = (
        query.options(selectinload(Ticket.tags))
        .order_by(Ticket.last_activity_at.desc(), Ticket.id.desc())
        .limit(size + 1)
    )
    tickets, next_cursor = page(
        list(db.session.scalars(query)),
        size,
        lambda t: encode_cursor(t.last_activity_at, t.id),
    )
    return jsonify({"data": [ticket_json(t) for t in tickets], "next_cursor": next_cursor})


@bp.get("/tickets/<int:ticket_id>")
@token_required("tickets:read")
def show_ticket(ticket_id: int):
    ticket = load_ticket(ticket_id)
    messages = db.session.scalars(
        select(Message)
        .where(Message.ticket_id == ticket.id)
        .options(selectinload(Message.attachments))
        .order_by(Message.created_at, Message.id)
    )
    return jsonify({**ticket_json(ticket), "messages": [message_json(m) for m in messages]})


@bp.patch("/tickets/<int:ticket_id>")
@token_required("tickets:write")
def update_ticket(ticket_id: int):
    ticket = load_ticket(ticket_id)
    body = Fields(json_body(), known=PATCH_FIELDS)
    status = body.choice("status", TicketStatus)
    priority = body.choice("priority", Priority)
    assignment: dict[str, Any] = {}
    if body.has("assignee_id"):
        assignment["assignee"] = _user(body.integer("assignee_id", nullable=True))
    if body.has("team_id"):
        assignment["team"] = _team(body.integer("team_id", nullable=True))
    tags = body.strings("tags")
    attributes = body.mapping("attributes")

    actor = current_actor()
    if assignment:
        assign_ticket(ticket, actor=actor, **assignment)
    if status is not None:
        set_status(ticket, status, actor=actor)
    if priority is not None:
        set_priority(ticket, priority, actor=actor)
    if tags is not None:
        set_tags(ticket, tags, actor=actor)
    if attributes is not None:
        _with_field("attributes", lambda: set_ticket_attributes(ticket, attributes, actor=actor))
    db.session.commit()
    return jsonify(ticket_json(ticket))


def _with_field(field: str, call: Any) -> Any:
    """Run an operation; its refusal becomes a 422 naming ``field``."""
    from helpdesk.operations.contacts import OperationError

    try:
        return call()
    except OperationError as exc:
        raise invalid(field, str(exc)) from None


def _user(user_id: int | None) -> User | None:
    if user_id is None:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.is_active_user:
        raise invalid("assignee_id", f"user {user_id} does not exist or is deactivated")
    return user


def _team(team_id: int | None) -> Team | None:
    if team_id is None:
        return None
    team = db.session.get(Team, team_id)
    if team is None:
        raise invalid("team_id", f"team {team_id} does not exist")
    return team


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return None
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise invalid("Idempotency-Key", f"the key is longer than {MAX_IDEMPOTENCY_KEY} characters")
    # Keys are the caller's; scope them to the token so two integrations never collide.
    return f"api:{current_token().id}:{key}"


def _replayed(key: str | None, ticket: Ticket) -> Message | None:
    if key is None:
        return None
    message = db.session.execute(
        select(Message).where(Message.idempotency_key == key)
    ).scalar_one_or_none()
    if message is not None and message.ticket_id != ticket.id:
        raise ApiError(409, "The Idempotency-Key was already used for another ticket.", "conflict")
    return message


def _post_message(ticket_id: int, *, note: bool):
    ticket = load_ticket(ticket_id)
    body = Fields(json_body(), known=("text", "status") if not note else ("text",))
    text = body.string("text", required=True, max_length=100_000) or ""
    status_after = None if note else body.choice("status", TicketStatus)
    key = _idempotency_key()
    replay = _replayed(key, ticket)
    if replay is not None:
        return jsonify({**message_json(replay), "replayed": True}), 200
    if note:
        message = _with_field(
            "text", lambda: add_note(ticket, actor=current_actor(), body=text, idempotency_key=key)
        )
    else:
        message = _with_field(
            "text",
            lambda: reply_to_ticket(
                ticket,
                actor=current_actor(),
                body=text,
                idempotency_key=key,
                status_after=status_after,
            ),
        )
    db.session.commit()
    return jsonify({**message_json(message), "replayed": False}), 201


@bp.post("/tickets/<int:ticket_id>/replies")
@token_required("tickets:write")
def reply(ticket_id: int):
    return _post_message(ticket_id, note=False)


@bp.post("/tickets/<int:ticket_id>/notes")
@token_required("tickets:write")
def note(ticket_id: int):
    return _post_message(ticket_id, note=True)
