"""Live updates for agents over Socket.IO: the ``/agent`` namespace and its rooms.

Rooms: ``ticket:<id>`` for everyone with the ticket open, ``agent:<user_id>``
for one agent's notifications, and ``inbox`` for list updates. Listeners on the
domain events (they fire after commit) emit small payloads of ids and display
fields; pages then fetch fresh HTML fragments, so no HTML is built here or in
JavaScript.

Collision detection: who has a ticket open (``presence``) and who is typing a
reply (``typing``).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from flask import Flask, current_app, has_app_context, request
from flask_login import current_user
from flask_socketio import Namespace, join_room, leave_room

from helpdesk import events
from helpdesk.extensions import socketio
from helpdesk.models import Role

log = logging.getLogger(__name__)

NAMESPACE = "/agent"
INBOX_ROOM = "inbox"


def ticket_room(ticket_id: int) -> str:
    return f"ticket:{ticket_id}"


def agent_room(user_id: int) -> str:
    return f"agent:{user_id}"


class Presence:
    """Who has which ticket open, per Socket.IO connection, in this process.

    The default install runs one process; with ``REDIS_URL`` the map lives in
    Redis instead (``RedisPresence``) so every web process sees every viewer.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: ticket id -> sid -> (user id, name)
        self._viewers: dict[int, dict[str, tuple[int, str]]] = {}

    def join(self, ticket_id: int, sid: str, user_id: int, name: str) -> None:
        with self._lock:
            self._viewers.setdefault(ticket_id, {})[sid] = (user_id, name)

    def leave(self, ticket_id: int, sid: str) -> bool:
        with self._lock:
            viewers = self._viewers.get(ticket_id)
            if not viewers or sid not in viewers:
                return False
            del viewers[sid]
            if not viewers:
                del self._viewers[ticket_id]
            return True

    def leave_all(self, sid: str) -> list[int]:
        """Forget ``sid`` everywhere; return the tickets it was viewing."""
        with self._lock:
            left = [tid for tid, viewers in self._viewers.items() if sid in viewers]
        for ticket_id in left:
            self.leave(ticket_id, sid)
        return left

    def tickets_of(self, sid: str) -> list[int]:
        with self._lock:
            return [tid for tid, viewers in self._viewers.items() if sid in viewers]

    def viewers(self, ticket_id: int) -> list[dict[str, Any]]:
        """One entry per agent (an agent with two tabs open counts once), by name."""
        with self._lock:
            entries = list(self._viewers.get(ticket_id, {}).values())
        return _people(entries)

    def clear(self) -> None:
        with self._lock:
            self._viewers.clear()


class RedisPresence:
    """The same map in Redis, shared by every web process (used when ``REDIS_URL`` is set).

    A hash per ticket (sid -> [user id, name]) and a set per connection (its
    tickets). Socket.IO sids are unique across processes. A process that dies
    without its disconnects leaves entries behind; every key expires after
    ``ttl`` seconds without a join, so a ghost viewer cannot outlive a working day.
    """

    def __init__(self, client: Any, prefix: str = "rapport:presence", ttl: int = 8 * 3600):
        self.client = client
        self.prefix = prefix
        self.ttl = ttl

    def _ticket_key(self, ticket_id: int) -> str:
        return f"{self.prefix}:ticket:{ticket_id}"

    def _sid_key(self, sid: str) -> str:
        return f"{self.prefix}:sid:{sid}"

    def join(self, ticket_id: int, sid: str, user_id: int, name: str) -> None:
        pipe = self.client.pipeline()
        pipe.hset(self._ticket_key(ticket_id), sid, json.dumps([user_id, name]))
        pipe.expire(self._ticket_key(ticket_id), self.ttl)
        pipe.sadd(self._sid_key(sid), ticket_id)
        pipe.expire(self._sid_key(sid), self.ttl)
        pipe.execute()

    def leave(self, ticket_id: int, sid: str) -> bool:
        pipe = self.client.pipeline()
        pipe.hdel(self._ticket_key(ticket_id), sid)
        pipe.srem(self._sid_key(sid), ticket_id)
        removed, _ = pipe.execute()
        return bool(removed)

    def leave_all(self, sid: str) -> list[int]:
        left = self.tickets_of(sid)
        for ticket_id in left:
            self.leave(ticket_id, sid)
        self.client.delete(self._sid_key(sid))
        return left

    def tickets_of(self, sid: str) -> list[int]:
        return sorted(int(t) for t in self.client.smembers(self._sid_key(sid)))

    def viewers(self, ticket_id: int) -> list[dict[str, Any]]:
        entries = []
        for raw in self.client.hvals(self._ticket_key(ticket_id)):
            user_id, name = json.loads(raw)
            entries.append((int(user_id), str(name)))
        return _people(entries)

    def clear(self) -> None:
        for key in self.client.scan_iter(f"{self.prefix}:*"):
            self.client.delete(key)


def _people(entries: list[tuple[int, str]]) -> list[dict[str, Any]]:
    people = dict(entries)
    return [{"id": uid, "name": name} for uid, name in sorted(people.items(), key=lambda p: p[1])]


_local_presence = Presence()


def init_presence(app: Flask) -> None:
    """Share presence through Redis when the app is scaled out over several processes."""
    if app.config.get("REDIS_URL"):
        from redis import Redis

        app.extensions["rapport.presence"] = RedisPresence(Redis.from_url(app.config["REDIS_URL"]))


class _CurrentPresence:
    """``presence``: the current app's map (Redis when scaled out, else this process's)."""

    def _target(self) -> Presence | RedisPresence:
        if has_app_context():
            shared = current_app.extensions.get("rapport.presence")
            if shared is not None:
                return shared
        return _local_presence

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


presence: Any = _CurrentPresence()


def _emit(event: str, data: dict[str, Any], room: str, *, skip_sid: str | None = None) -> None:
    socketio.emit(event, data, namespace=NAMESPACE, to=room, skip_sid=skip_sid)


def _emit_presence(ticket_id: int) -> None:
    _emit(
        "presence",
        {"ticket_id": ticket_id, "viewers": presence.viewers(ticket_id)},
        ticket_room(ticket_id),
    )


def _ticket_id(data: Any) -> int | None:
    raw = data.get("ticket_id") if isinstance(data, dict) else None
    if raw is None:
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


class AgentNamespace(Namespace):
    """Signed-in users only; the Flask session cookie authenticates the connection."""

    def on_connect(self, auth: Any = None) -> bool:
        if not current_user.is_authenticated:
            return False
        join_room(agent_room(current_user.id))
        join_room(INBOX_ROOM)
        return True

    def on_view(self, data: Any) -> None:
        """The client opened a ticket: join its room and tell the others."""
        ticket_id = _ticket_id(data)
        if ticket_id is None or not current_user.is_authenticated:
            return
        sid = request.sid  # type: ignore[attr-defined]
        # One ticket page per connection: leaving the previous one keeps presence honest.
        for previous in presence.tickets_of(sid):
            if previous != ticket_id:
                self._leave(previous, sid)
        join_room(ticket_room(ticket_id))
        presence.join(ticket_id, sid, current_user.id, current_user.name)
        _emit_presence(ticket_id)

    def on_leave(self, data: Any) -> None:
        ticket_id = _ticket_id(data)
        if ticket_id is not None:
            self._leave(ticket_id, request.sid)  # type: ignore[attr-defined]

    def on_typing(self, data: Any) -> None:
        """Relay "is typing a reply" to the others on the ticket (agents only)."""
        ticket_id = _ticket_id(data)
        if (
            ticket_id is None
            or not current_user.is_authenticated
            or not current_user.can(Role.AGENT)
        ):
            return
        sid = request.sid  # type: ignore[attr-defined]
        if ticket_id not in presence.tickets_of(sid):
            return
        _emit(
            "typing",
            {
                "ticket_id": ticket_id,
                "user": {"id": current_user.id, "name": current_user.name},
                "is_typing": bool(data.get("is_typing", True)),
            },
            ticket_room(ticket_id),
            skip_sid=sid,
        )

    def on_disconnect(self, reason: Any = None) -> None:
        for ticket_id in presence.leave_all(request.sid):  # type: ignore[attr-defined]
            _emit_presence(ticket_id)

    def _leave(self, ticket_id: int, sid: str) -> None:
        leave_room(ticket_room(ticket_id))
        if presence.leave(ticket_id, sid):
            _emit_presence(ticket_id)


def _register_namespace() -> None:
    # ``on_namespace`` registers only on the current server once one exists, but
    # every ``create_app`` builds a new server from ``namespace_handlers``; keep
    # the handler in that list so apps made later (tests, workers) have it too.
    handler = AgentNamespace(NAMESPACE)
    handler._set_socketio(socketio)
    socketio.namespace_handlers.append(handler)
    if socketio.server is not None:
        socketio.server.register_namespace(handler)


_register_namespace()


# ---------------------------------------------------------------- listeners


def _actor_fields(event: events.Event) -> dict[str, Any]:
    return {"actor": {"kind": event.actor.kind, "id": event.actor.id, "name": event.actor.label}}


@events.ticket_created.connect
def _on_ticket_created(sender: Any, event: events.TicketCreated, **_: Any) -> None:
    _emit("ticket.created", {"ticket_id": event.ticket_id, **_actor_fields(event)}, INBOX_ROOM)


def _message_event(event: events.MessageReceived | events.MessageAdded, *, is_note: bool) -> None:
    payload = {
        "ticket_id": event.ticket_id,
        "message_id": event.message_id,
        "is_note": is_note,
        **_actor_fields(event),
    }
    _emit("message.new", payload, ticket_room(event.ticket_id))
    _emit("ticket.activity", {"ticket_id": event.ticket_id}, INBOX_ROOM)


@events.message_received.connect
def _on_message_received(sender: Any, event: events.MessageReceived, **_: Any) -> None:
    _message_event(event, is_note=False)


@events.message_added.connect
def _on_message_added(sender: Any, event: events.MessageAdded, **_: Any) -> None:
    _message_event(event, is_note=event.is_note)


@events.message_delivery_changed.connect
def _on_delivery_changed(sender: Any, event: events.MessageDeliveryChanged, **_: Any) -> None:
    _emit(
        "message.delivery",
        {"ticket_id": event.ticket_id, "message_id": event.message_id, "status": event.status},
        ticket_room(event.ticket_id),
    )


@events.ticket_updated.connect
def _on_ticket_updated(sender: Any, event: events.TicketUpdated, **_: Any) -> None:
    payload = {
        "ticket_id": event.ticket_id,
        "fields": sorted(event.changes),
        **_actor_fields(event),
    }
    _emit("ticket.updated", payload, ticket_room(event.ticket_id))
    _emit("ticket.activity", {"ticket_id": event.ticket_id}, INBOX_ROOM)


@events.ticket_assigned.connect
def _on_ticket_assigned(sender: Any, event: events.TicketAssigned, **_: Any) -> None:
    if event.assignee_id is not None and event.assignee_id != event.actor.id:
        _emit(
            "ticket.assigned",
            {
                "ticket_id": event.ticket_id,
                "assignee_id": event.assignee_id,
                **_actor_fields(event),
            },
            agent_room(event.assignee_id),
        )


@events.tickets_merged.connect
def _on_tickets_merged(sender: Any, event: events.TicketsMerged, **_: Any) -> None:
    payload = {"ticket_id": event.ticket_id, "merged_id": event.merged_id, **_actor_fields(event)}
    _emit("ticket.merged", payload, ticket_room(event.merged_id))
    _emit(
        "ticket.updated",
        {"ticket_id": event.ticket_id, "fields": ["messages"]},
        ticket_room(event.ticket_id),
    )
    _emit("ticket.activity", {"ticket_id": event.ticket_id}, INBOX_ROOM)


@events.user_mentioned.connect
def _on_user_mentioned(sender: Any, event: events.UserMentioned, **_: Any) -> None:
    _emit(
        "mention",
        {"ticket_id": event.ticket_id, "message_id": event.message_id, **_actor_fields(event)},
        agent_room(event.user_id),
    )
