"""Bulk actions on the ticket list: assign, team, tag, status, merge; all or nothing."""

from __future__ import annotations

import uuid

import pytest

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import TicketStatus
from helpdesk.operations.users import create_team

SYSTEM = Actor.system("test")


@pytest.fixture
def agent(make_user, login):
    # The sign-in form validates addresses strictly; ".test" is a reserved name it refuses.
    user = make_user("agent", email=f"alice-{uuid.uuid4().hex[:4]}@example.com", name="Alice Agent")
    login(user)
    return user


@pytest.fixture
def three(app, make_ticket, make_contact):
    contact = make_contact()
    return [make_ticket(contact=contact, subject=f"t{i}") for i in range(3)]


def bulk(client, action, tickets, **fields):
    data = {
        "action": action,
        "ticket_ids": [str(t.id) for t in tickets],
        "next": "/?view=open",
        **fields,
    }
    return client.post("/bulk", data=data)


def refresh(*tickets):
    for t in tickets:
        db.session.refresh(t)


def test_bulk_assign(app, client, agent, three):
    response = bulk(client, "assign", three[:2], assignee=str(agent.id))
    assert response.status_code == 302 and response.headers["Location"] == "/?view=open"
    refresh(*three)
    assert [t.assignee_id for t in three] == [agent.id, agent.id, None]
    assert three[0].status is TicketStatus.OPEN


def test_bulk_team(app, client, agent, three):
    team = create_team(actor=SYSTEM, name="Logistics")
    db.session.commit()
    bulk(client, "team", three, team=str(team.id))
    refresh(*three)
    assert {t.team_id for t in three} == {team.id}


def test_bulk_tag_adds_to_existing_tags(app, client, agent, three):
    bulk(client, "tag", three[:1], tag="first")
    bulk(client, "tag", three, tag="Second")
    refresh(*three)
    assert [sorted(tag.name for tag in t.tags) for t in three] == [
        ["first", "second"],
        ["second"],
        ["second"],
    ]


def test_bulk_status(app, client, agent, three):
    bulk(client, "status", three, status="solved")
    refresh(*three)
    assert {t.status for t in three} == {TicketStatus.SOLVED}


def test_bulk_merge_keeps_the_oldest(app, client, agent, three):
    page = client.post(
        "/bulk",
        data={"action": "merge", "ticket_ids": [str(t.id) for t in three], "next": "/"},
        follow_redirects=True,
    )
    assert f"2 tickets were merged into #{three[0].id}.".encode() in page.data
    refresh(*three)
    assert three[0].merged_into_id is None
    assert [t.merged_into_id for t in three[1:]] == [three[0].id, three[0].id]


def test_bulk_merge_needs_two_tickets(app, client, agent, three):
    page = client.post(
        "/bulk", data={"action": "merge", "ticket_ids": [str(three[0].id)]}, follow_redirects=True
    )
    assert b"Select at least two tickets to merge." in page.data


def test_bulk_without_selection_or_with_unknown_action_changes_nothing(app, client, agent, three):
    page = client.post(
        "/bulk", data={"action": "status", "status": "solved"}, follow_redirects=True
    )
    assert b"Select at least one ticket first." in page.data
    page = client.post(
        "/bulk", data={"action": "explode", "ticket_ids": [str(three[0].id)]}, follow_redirects=True
    )
    assert b"Not a valid choice" in page.data
    refresh(*three)
    assert {t.status for t in three} == {TicketStatus.NEW}


def test_bulk_unknown_agent_is_a_400_and_nothing_changes(app, client, agent, three):
    assert bulk(client, "assign", three, assignee="99999").status_code == 400
    refresh(*three)
    assert {t.assignee_id for t in three} == {None}


def test_bulk_redirect_stays_on_this_site(app, client, agent, three):
    response = client.post(
        "/bulk",
        data={
            "action": "status",
            "status": "open",
            "ticket_ids": [str(three[0].id)],
            "next": "//evil.example/",
        },
    )
    assert response.headers["Location"] == "/"
