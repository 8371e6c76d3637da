"""Live updates: the /agent namespace, rooms, presence, typing, and the after-commit emits."""

from __future__ import annotations

import uuid

import pytest
from flask import g

from helpdesk.actors import Actor
from helpdesk.extensions import db, socketio
from helpdesk.operations.messages import reply_to_ticket
from helpdesk.realtime import presence

NS = "/agent"


def as_its_user(action, *args, **kwargs):
    """Run a request or socket event as the client's own user.

    The ``app`` fixture keeps one app context open for the whole test, and
    Flask-Login caches the signed-in user on ``g`` in it, so without this the
    second agent's request would still see the first agent. (Real requests and
    socket events each get a fresh app context.)
    """
    g.pop("_login_user", None)
    try:
        return action(*args, **kwargs)
    finally:
        g.pop("_login_user", None)


def emit(sio, event, data):
    as_its_user(sio.emit, event, data, namespace=NS)


def post(client, url, data):
    return as_its_user(client.post, url, data=data)


@pytest.fixture(autouse=True)
def _fresh_presence():
    presence.clear()
    yield
    presence.clear()


@pytest.fixture
def sign_in(app, make_user):
    """Return (user, flask client, socket client) for a new signed-in agent."""
    clients = []

    def make(name: str, role: str = "agent"):
        user = make_user(
            role, email=f"{name.lower()}-{uuid.uuid4().hex[:4]}@example.com", name=name
        )
        client = app.test_client()
        response = post(client, "/login", {"email": user.email, "password": "password123"})
        assert response.status_code == 302
        sio = as_its_user(socketio.test_client, app, namespace=NS, flask_test_client=client)
        assert sio.is_connected(NS)
        clients.append(sio)
        return user, client, sio

    yield make
    for sio in clients:
        if sio.is_connected(NS):
            as_its_user(sio.disconnect, namespace=NS)


def events_named(sio, name):
    return [e["args"][0] for e in sio.get_received(NS) if e["name"] == name]


def test_connection_without_sign_in_is_refused(app):
    sio = socketio.test_client(app, namespace=NS, flask_test_client=app.test_client())
    assert not sio.is_connected(NS)


def test_committed_reply_is_emitted_to_the_ticket_room(
    app, sign_in, make_ticket, recording_channel
):
    ticket = make_ticket()
    alice, alice_http, _ = sign_in("Alice")
    _, _, bob_sio = sign_in("Bob")
    _, _, carol_sio = sign_in("Carol")  # in the inbox, but not on this ticket
    emit(bob_sio, "view", {"ticket_id": ticket.id})
    bob_sio.get_received(NS)
    carol_sio.get_received(NS)

    response = post(alice_http, f"/tickets/{ticket.id}/reply", {"body": "Shipped today."})
    assert response.status_code == 302

    new = events_named(bob_sio, "message.new")
    assert len(new) == 1
    assert new[0]["ticket_id"] == ticket.id and new[0]["is_note"] is False
    assert new[0]["actor"] == {"kind": "user", "id": alice.id, "name": "Alice"}
    received = carol_sio.get_received(NS)
    assert "message.new" not in [e["name"] for e in received]
    assert "ticket.activity" in [e["name"] for e in received]


def test_nothing_is_emitted_for_a_rolled_back_reply(app, sign_in, make_ticket):
    ticket = make_ticket()
    _, _, sio = sign_in("Bob")
    emit(sio, "view", {"ticket_id": ticket.id})
    sio.get_received(NS)
    reply_to_ticket(ticket, actor=Actor.system("test"), body="never mind")
    db.session.rollback()
    assert events_named(sio, "message.new") == []


def test_presence_lists_who_is_viewing(app, sign_in, make_ticket):
    ticket = make_ticket()
    alice, _, alice_sio = sign_in("Alice")
    bob, _, bob_sio = sign_in("Bob")
    emit(alice_sio, "view", {"ticket_id": ticket.id})
    emit(bob_sio, "view", {"ticket_id": ticket.id})

    latest = events_named(alice_sio, "presence")[-1]
    assert latest == {
        "ticket_id": ticket.id,
        "viewers": [{"id": alice.id, "name": "Alice"}, {"id": bob.id, "name": "Bob"}],
    }
    as_its_user(bob_sio.disconnect, namespace=NS)
    assert events_named(alice_sio, "presence")[-1]["viewers"] == [{"id": alice.id, "name": "Alice"}]


def test_viewing_another_ticket_leaves_the_first(app, sign_in, make_ticket):
    first, second = make_ticket(), make_ticket()
    alice, _, alice_sio = sign_in("Alice")
    bob, _, bob_sio = sign_in("Bob")
    emit(alice_sio, "view", {"ticket_id": first.id})
    emit(bob_sio, "view", {"ticket_id": first.id})
    emit(bob_sio, "view", {"ticket_id": second.id})
    assert events_named(alice_sio, "presence")[-1]["viewers"] == [{"id": alice.id, "name": "Alice"}]
    assert bob.id not in [v["id"] for v in presence.viewers(first.id)]
    emit(bob_sio, "leave", {"ticket_id": second.id})
    assert presence.viewers(second.id) == []


def test_typing_reaches_the_others_but_not_the_typist(app, sign_in, make_ticket):
    ticket = make_ticket()
    alice, _, alice_sio = sign_in("Alice")
    _, _, bob_sio = sign_in("Bob")
    for sio in (alice_sio, bob_sio):
        emit(sio, "view", {"ticket_id": ticket.id})
    alice_sio.get_received(NS)
    bob_sio.get_received(NS)
    emit(alice_sio, "typing", {"ticket_id": ticket.id, "is_typing": True})
    assert events_named(bob_sio, "typing") == [
        {"ticket_id": ticket.id, "user": {"id": alice.id, "name": "Alice"}, "is_typing": True}
    ]
    assert events_named(alice_sio, "typing") == []


def test_read_only_users_do_not_broadcast_typing(app, sign_in, make_ticket):
    ticket = make_ticket()
    _, _, reader_sio = sign_in("Reader", role="read_only")
    _, _, bob_sio = sign_in("Bob")
    for sio in (reader_sio, bob_sio):
        emit(sio, "view", {"ticket_id": ticket.id})
    bob_sio.get_received(NS)
    emit(reader_sio, "typing", {"ticket_id": ticket.id})
    assert events_named(bob_sio, "typing") == []


def test_new_ticket_reaches_the_inbox_room(app, sign_in, make_ticket):
    _, _, sio = sign_in("Alice")
    sio.get_received(NS)
    ticket = make_ticket()
    assert [e["ticket_id"] for e in events_named(sio, "ticket.created")] == [ticket.id]


def test_mention_and_assignment_reach_the_agents_room(app, sign_in, make_ticket):
    ticket = make_ticket()
    alice, alice_http, _ = sign_in("Alice")
    bob, _, bob_sio = sign_in("Bob")
    bob_handle = bob.email.split("@")[0]
    bob_sio.get_received(NS)
    post(alice_http, f"/tickets/{ticket.id}/note", {"body": f"@{bob_handle} please look"})
    post(alice_http, f"/tickets/{ticket.id}/assign", {"assignee": str(bob.id)})
    received = bob_sio.get_received(NS)
    mentions = [e["args"][0] for e in received if e["name"] == "mention"]
    assigned = [e["args"][0] for e in received if e["name"] == "ticket.assigned"]
    assert [(m["ticket_id"], m["actor"]["id"]) for m in mentions] == [(ticket.id, alice.id)]
    assert [(a["ticket_id"], a["assignee_id"]) for a in assigned] == [(ticket.id, bob.id)]


def test_status_change_tells_the_viewers_to_refresh(app, sign_in, make_ticket):
    ticket = make_ticket()
    _, alice_http, _ = sign_in("Alice")
    _, _, bob_sio = sign_in("Bob")
    emit(bob_sio, "view", {"ticket_id": ticket.id})
    bob_sio.get_received(NS)
    post(alice_http, f"/tickets/{ticket.id}/status", {"status": "pending"})
    updates = events_named(bob_sio, "ticket.updated")
    assert updates and updates[0]["ticket_id"] == ticket.id and "status" in updates[0]["fields"]
