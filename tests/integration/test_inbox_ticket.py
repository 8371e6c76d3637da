"""The ticket page and its actions: reply, note, canned responses, properties, merge, errors."""

from __future__ import annotations

import io
import re
import uuid

import pytest
from sqlalchemy import func, select

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.ingest import ingest_message
from helpdesk.models import (
    CannedResponse,
    CustomAttribute,
    DeliveryStatus,
    Direction,
    Message,
    Notification,
    Priority,
    Ticket,
    TicketStatus,
)
from helpdesk.operations.messages import reply_to_ticket
from helpdesk.operations.users import create_team
from tests.factories import inbound

SYSTEM = Actor.system("test")


@pytest.fixture
def agent(make_user, login):
    # The sign-in form validates addresses strictly; ".test" is a reserved name it refuses.
    user = make_user("agent", email=f"alice-{uuid.uuid4().hex[:4]}@example.com", name="Alice Agent")
    login(user)
    return user


@pytest.fixture
def ticket(app, make_contact):
    contact = make_contact(name="Ada Lovelace", email="ada@example.test")
    result = ingest_message(
        inbound("My parcel never came.", sender="ada@example.test", subject="Parcel")
    )
    db.session.commit()
    assert result.message.contact_id == contact.id
    return result.ticket


def messages_of(ticket: Ticket) -> list[Message]:
    return list(
        db.session.scalars(
            select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id)
        )
    )


def test_ticket_page_shows_the_thread_with_channel_and_delivery(
    app, client, agent, ticket, recording_channel
):
    reply_to_ticket(ticket, actor=SYSTEM, body="On its way!")
    db.session.commit()
    page = client.get(f"/tickets/{ticket.id}")
    assert page.status_code == 200
    html = page.data.decode()
    assert "My parcel never came." in html and "On its way!" in html
    assert 'class="badge channel channel-email"' in html
    assert "delivery-sent" in html
    assert 'class="crm-sidebar"' in html or "crm-sidebar" in html
    assert re.search(r'name="idempotency_key"[^>]*value="[0-9a-f-]{36}"', html)


def test_failed_delivery_is_shown_with_the_reason(app, client, agent, ticket, recording_channel):
    from channels.base import PermanentDeliveryError

    recording_channel.fail_with = PermanentDeliveryError("mailbox does not exist")
    reply_to_ticket(ticket, actor=SYSTEM, body="Hello?")
    db.session.commit()
    html = client.get(f"/tickets/{ticket.id}").data.decode()
    assert "msg-failed" in html and "mailbox does not exist" in html


def test_unknown_ticket_is_a_404_page(app, client, agent):
    response = client.get("/tickets/999999")
    assert response.status_code == 404
    assert b"There is no ticket #999999." in response.data
    assert client.post("/tickets/999999/reply", data={"body": "x"}).status_code == 404


def test_reply_is_queued_delivered_and_shown(app, client, agent, ticket, recording_channel):
    response = client.post(
        f"/tickets/{ticket.id}/reply",
        data={"body": "We are on it.", "idempotency_key": str(uuid.uuid4())},
    )
    assert response.status_code == 302
    reply = messages_of(ticket)[-1]
    assert reply.direction is Direction.OUTBOUND and reply.author_id == agent.id
    assert reply.status is DeliveryStatus.SENT
    assert recording_channel.sent == [(reply.id, reply.idempotency_key)]
    assert ticket.status is TicketStatus.OPEN


def test_double_submitted_reply_creates_one_message(app, client, agent, ticket, recording_channel):
    form = {"body": "Only once, please.", "idempotency_key": str(uuid.uuid4())}
    first = client.post(f"/tickets/{ticket.id}/reply", data=form)
    second = client.post(f"/tickets/{ticket.id}/reply", data=form)
    assert first.status_code == second.status_code == 302
    outbound = [m for m in messages_of(ticket) if m.direction is Direction.OUTBOUND]
    assert len(outbound) == 1
    assert len(recording_channel.sent) == 1


def test_reply_can_set_the_status_after(app, client, agent, ticket, recording_channel):
    client.post(f"/tickets/{ticket.id}/reply", data={"body": "Done.", "status_after": "solved"})
    db.session.refresh(ticket)
    assert ticket.status is TicketStatus.SOLVED


def test_empty_reply_is_refused_and_the_page_says_why(app, client, agent, ticket):
    response = client.post(f"/tickets/{ticket.id}/reply", data={"body": "   "})
    assert response.status_code == 422
    assert b"Write something first." in response.data
    assert len(messages_of(ticket)) == 1


def test_reply_with_attachment(app, client, agent, ticket, recording_channel):
    data = {
        "body": "See attached.",
        "attachments": (io.BytesIO(b"%PDF-1.4 invoice"), "invoice.pdf"),
    }
    response = client.post(
        f"/tickets/{ticket.id}/reply", data=data, content_type="multipart/form-data"
    )
    assert response.status_code == 302
    reply = messages_of(ticket)[-1]
    assert [a.filename for a in reply.attachments] == ["invoice.pdf"]
    assert b"invoice.pdf" in client.get(f"/tickets/{ticket.id}").data


@pytest.fixture
def app_config():
    return {"RAPPORT_MAX_UPLOAD_BYTES": 1024, "MAX_CONTENT_LENGTH": 64 * 1024}


def test_oversized_upload_gets_a_clear_413(app, client, agent, ticket):
    # Over the per-upload limit but under the request limit: the view refuses it.
    data = {"body": "big", "attachments": (io.BytesIO(b"x" * 4096), "big.bin")}
    response = client.post(
        f"/tickets/{ticket.id}/reply", data=data, content_type="multipart/form-data"
    )
    assert response.status_code == 413
    assert b"The upload is too large" in response.data
    # Over the request limit: Werkzeug refuses it before the view runs.
    data = {"body": "huge", "attachments": (io.BytesIO(b"x" * 100_000), "huge.bin")}
    response = client.post(
        f"/tickets/{ticket.id}/reply", data=data, content_type="multipart/form-data"
    )
    assert response.status_code == 413
    assert b"The upload is too large" in response.data
    assert len(messages_of(ticket)) == 1


def test_read_only_user_cannot_change_anything(app, client, make_user, login, ticket):
    viewer = make_user("read_only", email="ro@example.com")
    login(viewer)
    posts = {
        "reply": {"body": "hi"},
        "note": {"body": "hi"},
        "status": {"status": "solved"},
        "priority": {"priority": "high"},
        "assign": {"assignee": str(viewer.id)},
        "tags": {"tags": "x"},
        "attributes": {},
        "merge": {"target": "1"},
    }
    for action, data in posts.items():
        response = client.post(f"/tickets/{ticket.id}/{action}", data=data)
        assert response.status_code == 403, action
        assert b"Your role does not allow this." in response.data
    assert (
        client.post(
            "/bulk", data={"action": "status", "status": "solved", "ticket_ids": [ticket.id]}
        ).status_code
        == 403
    )
    assert client.get(f"/tickets/{ticket.id}/canned/1").status_code == 403
    db.session.refresh(ticket)
    assert ticket.status is TicketStatus.NEW and len(messages_of(ticket)) == 1


def test_post_without_csrf_token_is_refused_with_a_clear_message(app, client, agent, ticket):
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        response = client.post(f"/tickets/{ticket.id}/reply", data={"body": "sneaky"})
        assert response.status_code == 400
        assert (
            b"The form expired or was sent from elsewhere; reload and try again." in response.data
        )
        page = client.get(f"/tickets/{ticket.id}").data.decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        ok = client.post(f"/tickets/{ticket.id}/reply", data={"body": "fine", "csrf_token": token})
        assert ok.status_code == 302
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert [m.text for m in messages_of(ticket)][-1] == "fine"


def test_note_with_mention_notifies_the_agent(app, client, agent, make_user, ticket):
    bob = make_user("agent", email="bob@example.com", name="Bob Builder")
    response = client.post(
        f"/tickets/{ticket.id}/note", data={"body": "@bob can you check the warehouse?"}
    )
    assert response.status_code == 302
    note = messages_of(ticket)[-1]
    assert note.direction is Direction.NOTE
    notes = db.session.scalars(select(Notification).where(Notification.kind == "mention")).all()
    assert [(n.user_id, n.message_id) for n in notes] == [(bob.id, note.id)]
    page = client.get(f"/tickets/{ticket.id}").data.decode()
    assert "msg-note" in page and "@bob can you check the warehouse?" in page


def test_mention_chips_list_the_other_agents(app, client, agent, make_user, ticket):
    make_user("agent", email="bob@example.com", name="Bob Builder")
    page = client.get(f"/tickets/{ticket.id}").data
    assert b'data-mention="bob"' in page
    assert f'data-mention="{agent.email.split("@")[0]}"'.encode() not in page


def test_canned_response_placeholders_are_filled_safely(app, client, agent, ticket):
    canned = CannedResponse(
        title="Greeting",
        shortcut="hi",
        body="Hi {{ contact.first_name }}, {{ agent.first_name }} here about #{{ ticket.number }}."
        "{{ contact.__class__ }}{{ nothing.at.all }}",
    )
    db.session.add(canned)
    db.session.commit()
    data = client.get(f"/tickets/{ticket.id}/canned/{canned.id}").get_json()
    assert data["body"] == f"Hi Ada, Alice here about #{ticket.id}."
    page = client.get(f"/tickets/{ticket.id}?canned={canned.id}").data.decode()
    assert f"Hi Ada, Alice here about #{ticket.id}." in page


def test_canned_response_with_a_broken_template_is_used_as_written(app, client, agent, ticket):
    canned = CannedResponse(title="Broken", shortcut="broken", body="Hello {{ contact.first_name ")
    evil = CannedResponse(
        title="Evil", shortcut="evil", body="{{ ''.__class__.__mro__[1].__subclasses__() }}"
    )
    db.session.add_all([canned, evil])
    db.session.commit()
    assert client.get(f"/tickets/{ticket.id}/canned/{canned.id}").get_json()["body"] == canned.body
    assert "subclasses" in client.get(f"/tickets/{ticket.id}/canned/{evil.id}").get_json()["body"]
    assert client.get(f"/tickets/{ticket.id}/canned/999").status_code == 404


def test_status_priority_assign_and_tags(app, client, agent, ticket):
    team = create_team(actor=SYSTEM, name="Returns")
    db.session.commit()
    assert (
        client.post(
            f"/tickets/{ticket.id}/assign", data={"assignee": str(agent.id), "team": str(team.id)}
        ).status_code
        == 302
    )
    assert (
        client.post(f"/tickets/{ticket.id}/priority", data={"priority": "urgent"}).status_code
        == 302
    )
    assert (
        client.post(f"/tickets/{ticket.id}/tags", data={"tags": "VIP, refund ,"}).status_code == 302
    )
    assert (
        client.post(f"/tickets/{ticket.id}/status", data={"status": "pending"}).status_code == 302
    )
    db.session.refresh(ticket)
    assert ticket.assignee_id == agent.id and ticket.team_id == team.id
    assert ticket.priority is Priority.URGENT
    assert [t.name for t in ticket.tags] == ["refund", "vip"]
    assert ticket.status is TicketStatus.PENDING
    client.post(f"/tickets/{ticket.id}/assign", data={"assignee": "", "team": ""})
    db.session.refresh(ticket)
    assert ticket.assignee_id is None and ticket.team_id is None


def test_invalid_status_is_refused(app, client, agent, ticket):
    response = client.post(
        f"/tickets/{ticket.id}/status", data={"status": "bogus"}, follow_redirects=True
    )
    assert b"Not a valid choice" in response.data
    db.session.refresh(ticket)
    assert ticket.status is TicketStatus.NEW


def test_custom_attributes(app, client, agent, ticket):
    db.session.add_all(
        [
            CustomAttribute(
                applies_to="ticket", key="order_no", label="Order number", type="number"
            ),
            CustomAttribute(applies_to="ticket", key="gift", label="Gift", type="boolean"),
        ]
    )
    db.session.commit()
    page = client.get(f"/tickets/{ticket.id}").data
    assert b'name="attr_order_no"' in page
    client.post(
        f"/tickets/{ticket.id}/attributes",
        data={"attr_order_no": "1234", "attr_gift__present": "1", "attr_gift": "1"},
    )
    db.session.refresh(ticket)
    assert ticket.attributes == {"order_no": 1234, "gift": True}
    client.post(
        f"/tickets/{ticket.id}/attributes",
        data={"attr_order_no": "1234", "attr_gift__present": "1"},
    )
    db.session.refresh(ticket)
    assert ticket.attributes["gift"] is False
    bad = client.post(
        f"/tickets/{ticket.id}/attributes", data={"attr_order_no": "many"}, follow_redirects=True
    )
    assert b"is not a valid number" in bad.data


def test_merge_moves_the_thread_and_redirects(app, client, agent, ticket, make_ticket):
    other = make_ticket(contact=ticket.contact, subject="Parcel again")
    response = client.post(f"/tickets/{other.id}/merge", data={"target": str(ticket.id)})
    assert response.status_code == 302 and response.headers["Location"].startswith(
        f"/tickets/{ticket.id}"
    )
    db.session.refresh(other)
    assert other.merged_into_id == ticket.id and other.status is TicketStatus.CLOSED
    old = client.get(f"/tickets/{other.id}")
    assert old.status_code == 302 and old.headers["Location"].startswith(f"/tickets/{ticket.id}")


def test_merge_into_itself_or_nowhere_is_explained(app, client, agent, ticket):
    page = client.post(
        f"/tickets/{ticket.id}/merge", data={"target": str(ticket.id)}, follow_redirects=True
    )
    assert b"cannot be merged into itself" in page.data
    page = client.post(
        f"/tickets/{ticket.id}/merge", data={"target": "424242"}, follow_redirects=True
    )
    assert b"There is no ticket #424242." in page.data


def test_message_fragment_and_properties_fragment(app, client, agent, ticket):
    message = messages_of(ticket)[0]
    fragment = client.get(f"/tickets/{ticket.id}/messages/{message.id}")
    assert fragment.status_code == 200
    assert (
        fragment.data.lstrip().startswith(b"<li")
        and f'id="message-{message.id}"'.encode() in fragment.data
    )
    assert b"<html" not in fragment.data
    assert client.get(f"/tickets/{ticket.id}/messages/999999").status_code == 404
    props = client.get(f"/tickets/{ticket.id}/properties")
    assert b'id="properties"' in props.data and b'hx-swap-oob="true"' in props.data


def test_message_html_is_shown_sanitised(app, client, agent):
    ingest_message(
        inbound(
            html='<p>Hi<script>alert(1)</script><img src=x onerror="boom()"></p>',
            sender="x@example.test",
        )
    )
    db.session.commit()
    ticket_id = db.session.scalar(select(func.max(Ticket.id)))
    html = client.get(f"/tickets/{ticket_id}").data
    assert b"<script>alert(1)" not in html and b"onerror" not in html
