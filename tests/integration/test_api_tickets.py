"""API conversations: POST /messages, and reading, changing and replying to tickets."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import AuditEvent, Message, Ticket, TicketStatus
from helpdesk.operations.users import create_api_token, create_team


@pytest.fixture
def token(app):
    _, secret = create_api_token(actor=Actor.system("test"), name="shop", scopes=["all"])
    db.session.commit()
    return secret


@pytest.fixture
def api(client, token):
    """Call the API with the token: ``api("post", "/messages", json={...})``."""

    def call(method: str, path: str, **kw):
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        return getattr(client, method)(f"/api/v1{path}", headers=headers, **kw)

    return call


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def post_message(api, external_id="m-1", **kw):
    body = {
        "external_id": external_id,
        "contact": {"email": "eleni@example.test", "name": "Ελένη Παπαδοπούλου"},
        "text": "Η παραγγελία μου δεν έφτασε.",
        "subject": "Παραγγελία",
        **kw,
    }
    return api("post", "/messages", json=body)


# ------------------------------------------------------------------ messages


def test_posting_a_message_creates_contact_and_ticket_on_the_api_channel(api):
    response = post_message(api)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["duplicate"] is False and body["created_ticket"] is True
    ticket = db.session.get(Ticket, body["ticket_id"])
    assert ticket.channel == "api"
    assert ticket.subject == "Παραγγελία"
    assert ticket.contact.name == "Ελένη Παπαδοπούλου"
    assert ticket.contact.email == "eleni@example.test"


def test_posting_the_same_external_id_again_is_idempotent(api):
    first = post_message(api).get_json()
    again = post_message(api)
    assert again.status_code == 200
    assert again.get_json()["duplicate"] is True
    assert again.get_json()["message_id"] == first["message_id"]
    assert count(Message) == 1


def test_conversation_id_continues_the_same_ticket(api):
    first = post_message(api, "c-1", conversation_id="chat-9").get_json()
    second = post_message(api, "c-2", conversation_id="chat-9", text="Any news?").get_json()
    assert second["ticket_id"] == first["ticket_id"]
    assert second["created_ticket"] is False


def test_ticket_id_continues_only_the_contacts_own_ticket(api):
    first = post_message(api, "t-1").get_json()
    own = post_message(api, "t-2", ticket_id=first["ticket_id"]).get_json()
    stranger = api(
        "post",
        "/messages",
        json={
            "external_id": "t-3",
            "contact": {"email": "mallory@example.test"},
            "text": "let me in",
            "ticket_id": first["ticket_id"],
        },
    ).get_json()
    assert own["ticket_id"] == first["ticket_id"]
    assert stranger["ticket_id"] != first["ticket_id"]


def test_contact_by_phone_or_by_the_integrations_own_id(api):
    by_phone = api(
        "post",
        "/messages",
        json={"external_id": "p-1", "contact": {"phone": "+36 1 234 5678"}, "text": "Szia"},
    ).get_json()
    by_id = api(
        "post",
        "/messages",
        json={"external_id": "p-2", "contact": {"id": 4711, "name": "Kunde"}, "text": "Hallo"},
    ).get_json()
    assert db.session.get(Ticket, by_phone["ticket_id"]).contact.identities[0].value == (
        "+3612345678"
    )
    identity = db.session.get(Ticket, by_id["ticket_id"]).contact.identities[0]
    assert (identity.kind.value, identity.value) == ("api", "4711")


def test_message_without_any_contact_identity_is_a_422_naming_contact(api):
    response = api("post", "/messages", json={"external_id": "x", "contact": {}, "text": "hi"})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "contact"


def test_message_without_external_id_is_a_422(api):
    response = api("post", "/messages", json={"contact": {"email": "a@b.test"}, "text": "hi"})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "external_id"


def test_html_from_the_api_is_sanitized(api):
    body = post_message(api, html='<p onclick="x()">Hi<script>alert(1)</script></p>').get_json()
    message = db.session.get(Message, body["message_id"])
    assert "script" not in message.html and "onclick" not in message.html


def test_messages_write_scope_is_needed_to_post(client):
    _, secret = create_api_token(actor=Actor.system("t"), name="ro", scopes=["tickets:read"])
    db.session.commit()
    response = client.post(
        "/api/v1/messages",
        json={"external_id": "a", "contact": {"email": "a@b.test"}, "text": "hi"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 403


# ------------------------------------------------------------------ tickets


def test_ticket_list_filters_and_pages_with_an_opaque_cursor(api, make_ticket, make_contact):
    contact = make_contact()
    tickets = [make_ticket(contact=contact, subject=f"T{i}") for i in range(5)]
    make_ticket(channel="sms")
    seen = []
    cursor = None
    while True:
        query = {"channel": "email", "limit": 2, "contact_id": contact.id}
        if cursor:
            query["cursor"] = cursor
        body = api("get", "/tickets", query_string=query).get_json()
        seen += [t["id"] for t in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [t.id for t in reversed(tickets)]


def test_ticket_list_filters_by_status_and_tag(api, make_ticket):
    tagged = make_ticket(tags=["VIP"])
    solved = make_ticket()
    api("patch", f"/tickets/{solved.id}", json={"status": "solved"})
    assert [t["id"] for t in api("get", "/tickets?tag=vip").get_json()["data"]] == [tagged.id]
    body = api("get", "/tickets?status=solved,closed").get_json()
    assert [t["id"] for t in body["data"]] == [solved.id]
    bad = api("get", "/tickets?status=asleep")
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "status"


def test_ticket_detail_includes_its_messages_in_order(api):
    first = post_message(api, "d-1", conversation_id="c").get_json()
    post_message(api, "d-2", conversation_id="c", text="second")
    body = api("get", f"/tickets/{first['ticket_id']}").get_json()
    assert [m["text"] for m in body["messages"]] == ["Η παραγγελία μου δεν έφτασε.", "second"]
    assert body["messages"][0]["direction"] == "inbound"


def test_patch_changes_fields_through_operations_and_audits_the_token(api, make_ticket, make_user):
    ticket = make_ticket()
    agent = make_user("agent")
    team = create_team(actor=Actor.system("t"), name="Billing")
    db.session.commit()
    response = api(
        "patch",
        f"/tickets/{ticket.id}",
        json={
            "status": "pending",
            "priority": "urgent",
            "assignee_id": agent.id,
            "team_id": team.id,
            "tags": ["Refund", "vip"],
        },
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "pending" and body["priority"] == "urgent"
    assert body["assignee_id"] == agent.id and body["team_id"] == team.id
    assert body["tags"] == ["refund", "vip"]
    actions = db.session.scalars(
        select(AuditEvent).where(AuditEvent.ticket_id == ticket.id, AuditEvent.actor_kind == "api")
    ).all()
    assert {a.action for a in actions} >= {
        "ticket.status_changed",
        "ticket.priority_changed",
        "ticket.assigned",
        "ticket.tagged",
    }


def test_patch_with_an_unknown_assignee_changes_nothing(api, make_ticket):
    ticket = make_ticket()
    response = api("patch", f"/tickets/{ticket.id}", json={"status": "solved", "assignee_id": 999})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "assignee_id"
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).status is TicketStatus.NEW


def test_patch_with_an_unknown_custom_attribute_is_a_422(api, make_ticket):
    ticket = make_ticket()
    response = api("patch", f"/tickets/{ticket.id}", json={"attributes": {"nope": 1}})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "attributes"


def test_reply_is_queued_and_can_set_the_status(api, make_ticket):
    ticket = make_ticket()
    response = api(
        "post", f"/tickets/{ticket.id}/replies", json={"text": "On its way!", "status": "pending"}
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["direction"] == "outbound" and body["author_kind"] == "api"
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).status is TicketStatus.PENDING


def test_double_submitted_reply_with_one_idempotency_key_is_stored_once(api, make_ticket):
    ticket = make_ticket()
    headers = {"Idempotency-Key": "reply-42"}
    first = api("post", f"/tickets/{ticket.id}/replies", json={"text": "Hi"}, headers=headers)
    second = api("post", f"/tickets/{ticket.id}/replies", json={"text": "Hi"}, headers=headers)
    assert first.status_code == 201 and second.status_code == 200
    assert second.get_json()["replayed"] is True
    assert second.get_json()["id"] == first.get_json()["id"]
    assert count(Message) == 1


def test_idempotency_key_reused_on_another_ticket_is_a_conflict(api, make_ticket):
    one, other = make_ticket(), make_ticket()
    headers = {"Idempotency-Key": "k"}
    api("post", f"/tickets/{one.id}/replies", json={"text": "Hi"}, headers=headers)
    response = api("post", f"/tickets/{other.id}/replies", json={"text": "Hi"}, headers=headers)
    assert response.status_code == 409


def test_note_is_internal(api, make_ticket):
    ticket = make_ticket()
    response = api("post", f"/tickets/{ticket.id}/notes", json={"text": "Customer is VIP"})
    assert response.status_code == 201
    assert response.get_json()["direction"] == "note"


def test_empty_reply_is_a_422_naming_text(api, make_ticket):
    ticket = make_ticket()
    response = api("post", f"/tickets/{ticket.id}/replies", json={"text": "   "})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "text"


def test_reply_to_an_unknown_ticket_is_a_404(api):
    assert api("post", "/tickets/12345/replies", json={"text": "Hi"}).status_code == 404
