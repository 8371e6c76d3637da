"""Surveys end to end: solve, link on the ticket's channel, answer page, survey.answered, rule."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from automation.rules.testing import make_rule, rule_runs, wire
from automation.surveys.models import Survey
from automation.surveys.operations import send_survey, survey_token
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import AuditEvent, Direction, Message, Ticket, TicketStatus
from helpdesk.operations.tickets import set_status


@pytest.fixture
def app_config():
    return {"RAPPORT_SURVEY_ON_SOLVE": "csat", "RAPPORT_PUBLIC_URL": "https://help.example.test"}


@pytest.fixture
def app(app):
    return wire(app)


@pytest.fixture
def agent(make_user):
    return make_user("agent", name="Sam Support")


def solve(ticket, agent):
    set_status(ticket, TicketStatus.SOLVED, actor=Actor.for_user(agent))
    db.session.commit()


def sent_link(ticket):
    message = db.session.scalars(
        select(Message).where(
            Message.ticket_id == ticket.id, Message.direction == Direction.OUTBOUND
        )
    ).one()
    match = re.search(r"https://help\.example\.test(/survey/\S+)", message.text)
    assert match, message.text
    return message, match.group(1)


def test_solving_sends_a_csat_link_on_the_tickets_channel_in_the_contacts_language(
    make_contact, make_ticket, agent, recording_channel, client
):
    contact = make_contact(name="Eleni Papadopoulou", locale="el")
    ticket = make_ticket(contact=contact, subject="Χαμένο δέμα")
    solve(ticket, agent)
    message, path = sent_link(ticket)
    assert recording_channel.sent == [
        (message.id, f"survey-{db.session.scalars(select(Survey.id)).one()}")
    ]
    assert message.is_by_automation and message.text.startswith("Γεια σας Eleni")
    page = client.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'lang="el"' in html and "Πόσο ικανοποιημένοι" in html
    assert html.count('name="score"') == 5
    db.session.expire_all()
    assert (
        db.session.get(Ticket, ticket.id).status is TicketStatus.SOLVED
    )  # the survey reply does not reopen


def test_answer_fires_survey_answered_and_a_rule_acts_on_a_low_score(
    make_contact, make_ticket, agent, recording_channel, client
):
    rule = make_rule(
        {
            "name": "Unhappy customers get a call",
            "trigger": "survey.answered",
            "conditions": {"all": [{"field": "survey.csat_score", "operator": "lte", "value": 2}]},
            "actions": [
                {"type": "set_tags", "add": ["unhappy"]},
                {"type": "note", "body": "CSAT {{ survey.score }}: call {{ contact.first_name }}."},
            ],
        }
    )
    contact = make_contact(name="Ada Lovelace")
    ticket = make_ticket(contact=contact)
    solve(ticket, agent)
    _, path = sent_link(ticket)
    answered = client.post(path, data={"score": "2", "comment": "Took ages"})
    assert answered.status_code == 200
    assert "Thank you" in answered.get_data(as_text=True)
    db.session.expire_all()
    survey = db.session.scalars(select(Survey)).one()
    assert (survey.score, survey.comment, survey.contact_id) == (2, "Took ages", contact.id)
    assert [t.name for t in db.session.get(Ticket, ticket.id).tags] == ["unhappy"]
    [run] = rule_runs(rule)
    assert run.trigger == "survey.answered" and run.conditions[0]["actual"] == 2
    entry = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "survey.answered")
    ).one()
    assert entry.contact_id == contact.id and entry.ticket_id == ticket.id
    assert entry.actor_kind == "contact" and entry.data["score"] == 2


def test_a_survey_link_works_once(make_ticket, agent, recording_channel, client):
    ticket = make_ticket()
    solve(ticket, agent)
    _, path = sent_link(ticket)
    assert client.post(path, data={"score": "5"}).status_code == 200
    again = client.post(path, data={"score": "1"})
    assert again.status_code == 200 and "already answered" in again.get_data(as_text=True)
    assert db.session.scalars(select(Survey.score)).one() == 5


def test_a_forged_or_foreign_token_is_refused(make_ticket, agent, recording_channel, client, app):
    ticket = make_ticket()
    solve(ticket, agent)
    _, path = sent_link(ticket)
    tampered = path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb")
    assert client.get(tampered).status_code == 404
    from itsdangerous import URLSafeTimedSerializer

    survey = db.session.scalars(select(Survey)).one()
    foreign = URLSafeTimedSerializer("another-secret", salt="rapport.survey").dumps(
        {"s": survey.id, "n": survey.nonce}
    )
    assert client.post(f"/survey/{foreign}", data={"score": "1"}).status_code == 404
    wrong_nonce = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="rapport.survey").dumps(
        {"s": survey.id, "n": "0" * 32}
    )
    assert client.get(f"/survey/{wrong_nonce}").status_code == 404


def test_a_score_outside_the_scale_is_refused(make_ticket, agent, recording_channel, client):
    ticket = make_ticket()
    solve(ticket, agent)
    _, path = sent_link(ticket)
    assert client.post(path, data={"score": "9"}).status_code == 422
    assert client.post(path, data={}).status_code == 422
    assert db.session.scalars(select(Survey.answered_at)).one() is None


def test_arabic_answer_page_is_right_to_left(make_contact, make_ticket, recording_channel, client):
    ticket = make_ticket(contact=make_contact(name="Omar", locale="ar"))
    survey = send_survey(ticket, "nps", actor=Actor.automation(None, "test"))
    db.session.commit()
    html = client.get(f"/survey/{survey_token(survey)}").get_data(as_text=True)
    assert 'dir="rtl"' in html and 'lang="ar"' in html
    assert html.count('name="score"') == 11  # NPS 0-10


def test_hungarian_page_and_one_survey_of_a_kind_per_ticket(
    make_contact, make_ticket, recording_channel, client
):
    ticket = make_ticket(contact=make_contact(name="Zsofia", locale="hu-HU"))
    first = send_survey(ticket, "csat", actor=Actor.automation(None, "test"))
    again = send_survey(ticket, "csat", actor=Actor.automation(None, "test"))
    db.session.commit()
    assert again is None
    assert "Mennyire elégedett" in client.get(f"/survey/{survey_token(first)}").get_data(
        as_text=True
    )


def test_a_rule_can_send_an_nps_survey_when_the_default_is_off(
    app, make_ticket, agent, recording_channel, client
):
    app.config["RAPPORT_SURVEY_ON_SOLVE"] = ""
    make_rule(
        {
            "name": "NPS",
            "trigger": "ticket.solved",
            "actions": [{"type": "send_survey", "kind": "nps"}],
        }
    )
    ticket = make_ticket()
    solve(ticket, agent)
    survey = db.session.scalars(select(Survey)).one()
    assert survey.kind == "nps" and len(recording_channel.sent) == 1
    # Solving again after reopening asks nothing new.
    set_status(ticket, TicketStatus.OPEN, actor=Actor.for_user(agent))
    db.session.commit()
    solve(ticket, agent)
    assert len(recording_channel.sent) == 1


def test_survey_answer_issues_a_feedback_voucher_through_a_rule(
    make_ticket, agent, recording_channel, client
):
    from automation.incentives import operations as incentives
    from automation.incentives.policy import RewardKind

    incentives.create_policy(
        actor=Actor.system("test"),
        key="thanks-for-feedback",
        name="Thanks",
        kind=RewardKind.FIXED,
        value=Decimal("5"),
        currency="EUR",
    )
    db.session.commit()
    rule = make_rule(
        {
            "name": "Voucher for feedback",
            "trigger": "survey.answered",
            "actions": [{"type": "issue_incentive", "policy": "thanks-for-feedback"}],
        }
    )
    ticket = make_ticket()
    solve(ticket, agent)
    _, path = sent_link(ticket)
    client.post(path, data={"score": "4"})
    [run] = rule_runs(rule)
    assert run.actions[0]["status"] == "done", run.actions
    assert run.actions[0]["issued"] is True
    from automation.incentives.models import IncentiveGrant

    grant = db.session.scalars(select(IncentiveGrant)).one()
    assert grant.contact_id == ticket.contact_id
