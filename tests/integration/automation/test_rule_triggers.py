"""Every event trigger fires a rule that does something observable; automation never loops."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from automation.rules.testing import make_rule, rule_runs, webhook_receiver, wire
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.ingest import ingest_message
from helpdesk.models import AuditEvent, OrderStatus, Priority, Ticket, TicketStatus
from helpdesk.operations.orders import record_order
from helpdesk.operations.tickets import set_priority, set_status
from tests.factories import inbound


@pytest.fixture
def app(app):
    return wire(app)


@pytest.fixture
def agent(make_user):
    return make_user("agent", name="Sam Support")


def tag_rule(trigger, tag, conditions=None, **kw):
    return make_rule(
        {
            "name": f"{trigger} tags {tag}",
            "trigger": {"type": trigger},
            "conditions": conditions or {},
            "actions": [{"type": "set_tags", "add": [tag]}],
        },
        **kw,
    )


def tags(ticket):
    db.session.expire_all()
    return sorted(t.name for t in db.session.get(Ticket, ticket.id).tags)


def test_ticket_created_rule_tags_the_new_ticket(app):
    tag_rule("ticket.created", "welcomed")
    result = ingest_message(inbound("Hi"))
    db.session.commit()
    assert tags(result.ticket) == ["welcomed"]
    [run] = rule_runs()
    assert run.trigger == "ticket.created" and run.ticket_id == result.ticket.id
    assert run.actions[0]["status"] == "done"


def test_message_received_rule_reads_the_message_body(app):
    make_rule(
        {
            "name": "Refunds are urgent",
            "trigger": "message.received",
            "conditions": {
                "all": [{"field": "message.body", "operator": "contains", "value": "refund"}]
            },
            "actions": [{"type": "set_priority", "priority": "urgent"}],
        }
    )
    calm = ingest_message(inbound("Just a question", sender="calm@example.test"))
    db.session.commit()
    angry = ingest_message(inbound("I want a REFUND now", sender="angry@example.test"))
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Ticket, calm.ticket.id).priority is Priority.NORMAL
    assert db.session.get(Ticket, angry.ticket.id).priority is Priority.URGENT


def test_ticket_updated_rule_sees_which_fields_changed(make_ticket, agent):
    tag_rule(
        "ticket.updated",
        "escalated",
        {"all": [{"field": "event.changed_fields", "operator": "contains", "value": "priority"}]},
    )
    ticket = make_ticket()
    set_priority(ticket, Priority.HIGH, actor=Actor.for_user(agent))
    db.session.commit()
    assert tags(ticket) == ["escalated"]


def test_rule_changes_do_not_trigger_rules_again(make_ticket, agent):
    """A rule that tags on ticket.updated causes a ticket.updated itself; it must not loop."""
    rule = tag_rule("ticket.updated", "touched")
    ticket = make_ticket()
    set_priority(ticket, Priority.HIGH, actor=Actor.for_user(agent))
    db.session.commit()
    assert tags(ticket) == ["touched"]
    assert len(rule_runs(rule)) == 1
    updates = db.session.scalars(
        select(AuditEvent).where(
            AuditEvent.ticket_id == ticket.id, AuditEvent.action == "ticket.tagged"
        )
    ).all()
    assert [u.actor_kind for u in updates] == ["automation"]


def test_solved_closed_and_reopened_triggers(make_ticket, agent):
    tag_rule("ticket.solved", "was-solved")
    make_rule(
        {
            "name": "Close note",
            "trigger": "ticket.closed",
            "actions": [{"type": "note", "body": "Closed; {{ contact.first_name }} was helped."}],
        }
    )
    make_rule(
        {
            "name": "Reopened is urgent",
            "trigger": "ticket.reopened",
            "actions": [{"type": "set_priority", "priority": "urgent"}],
        }
    )
    ticket = make_ticket()
    actor = Actor.for_user(agent)
    set_status(ticket, TicketStatus.SOLVED, actor=actor)
    db.session.commit()
    assert tags(ticket) == ["was-solved"]
    set_status(ticket, TicketStatus.CLOSED, actor=actor)
    db.session.commit()
    from helpdesk.models import Direction, Message

    notes = db.session.scalars(
        select(Message).where(Message.ticket_id == ticket.id, Message.direction == Direction.NOTE)
    ).all()
    assert [n.text for n in notes] == ["Closed; Ada was helped."]
    assert notes[0].is_by_automation
    set_status(ticket, TicketStatus.OPEN, actor=actor)
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).priority is Priority.URGENT
    assert [r.trigger for r in rule_runs()] == ["ticket.solved", "ticket.closed", "ticket.reopened"]


def test_disabled_rules_do_not_run(make_ticket, agent):
    tag_rule("ticket.solved", "nope", enabled=False)
    ticket = make_ticket()
    set_status(ticket, TicketStatus.SOLVED, actor=Actor.for_user(agent))
    db.session.commit()
    assert tags(ticket) == [] and rule_runs() == []


def test_rules_run_in_order_and_later_rules_see_earlier_changes(make_ticket, agent):
    tag_rule("ticket.solved", "first")
    tag_rule(
        "ticket.solved",
        "second",
        {"all": [{"field": "ticket.tags", "operator": "contains", "value": "first"}]},
    )
    ticket = make_ticket()
    set_status(ticket, TicketStatus.SOLVED, actor=Actor.for_user(agent))
    db.session.commit()
    assert tags(ticket) == ["first", "second"]


def test_non_matching_conditions_do_nothing(make_ticket, agent):
    tag_rule(
        "ticket.solved",
        "vip",
        {"all": [{"field": "contact.order_count", "operator": "gte", "value": 1}]},
    )
    ticket = make_ticket()
    set_status(ticket, TicketStatus.SOLVED, actor=Actor.for_user(agent))
    db.session.commit()
    assert tags(ticket) == [] and rule_runs() == []


def _hook_rule(trigger, url, conditions=None):
    return make_rule(
        {
            "name": f"{trigger} hook",
            "trigger": trigger,
            "conditions": conditions or {},
            "actions": [{"type": "webhook", "url": url}],
        }
    )


def test_order_triggers_created_paid_refunded(make_contact):
    contact = make_contact(email="buyer@example.test")
    api = Actor("api", 1, "shop")
    with webhook_receiver() as hook:
        for trigger in ("order.created", "order.paid", "order.refunded"):
            _hook_rule(trigger, hook.url)
        record_order(
            actor=api,
            external_id="A-1",
            total=Decimal("50.00"),
            currency="EUR",
            status=OrderStatus.PENDING,
            contact=contact,
        )
        db.session.commit()
        record_order(
            actor=api,
            external_id="A-1",
            total=Decimal("50.00"),
            currency="EUR",
            status=OrderStatus.PAID,
            contact=contact,
        )
        db.session.commit()
        record_order(
            actor=api,
            external_id="A-1",
            total=Decimal("50.00"),
            currency="EUR",
            status=OrderStatus.REFUNDED,
            refunded_total=Decimal("50.00"),
            contact=contact,
        )
        db.session.commit()
        events = [r.json["event"] for r in hook.requests]
    assert events == ["order.created", "order.paid", "order.refunded"]
    assert hook.requests[1].json["contact"]["email"] == "buyer@example.test"
    assert {r.contact_id for r in rule_runs()} == {contact.id}


def test_order_conditions_read_the_order_and_the_contacts_spend(make_contact):
    contact = make_contact()
    api = Actor("api", 1, "shop")
    with webhook_receiver() as hook:
        _hook_rule(
            "order.paid",
            hook.url,
            {
                "all": [
                    {"field": "order.total", "operator": "gte", "value": 100},
                    {"field": "contact.total_spend", "operator": "gte", "value": 150},
                ]
            },
        )
        for n, total in enumerate(("60.00", "120.00")):
            record_order(
                actor=api,
                external_id=f"B-{n}",
                total=Decimal(total),
                currency="EUR",
                status=OrderStatus.PAID,
                contact=contact,
            )
            db.session.commit()
        assert len(hook.requests) == 1
        assert hook.requests[0].json["order"]["external_id"] == "B-1"


def test_contact_created_trigger(app):
    with webhook_receiver() as hook:
        _hook_rule("contact.created", hook.url)
        ingest_message(inbound("Hello", sender="newbie@example.test"))
        db.session.commit()
        assert [r.json["event"] for r in hook.requests] == ["contact.created"]
        assert hook.requests[0].json["contact"]["email"] == "newbie@example.test"


def test_a_failing_action_is_logged_and_the_others_still_run(make_ticket, agent):
    rule = make_rule(
        {
            "name": "Half broken",
            "trigger": "ticket.solved",
            "actions": [
                {"type": "assign", "agent": agent.email},
                {"type": "set_tags", "add": ["kept"]},
            ],
        }
    )
    agent.is_active_user = False
    db.session.commit()
    ticket = make_ticket()
    from helpdesk.actors import SYSTEM

    set_status(ticket, TicketStatus.SOLVED, actor=SYSTEM)
    db.session.commit()
    [run] = rule_runs(rule)
    assert run.outcome == "error"
    assert [a["status"] for a in run.actions] == ["error", "done"]
    assert "no active agent" in run.actions[0]["error"]
    assert tags(ticket) == ["kept"]
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "rule.ran")).one()
    assert audit.ticket_id == ticket.id and audit.data["run_id"] == run.id


def test_assign_actions_agent_team_and_round_robin(make_ticket, make_user, agent):
    from helpdesk.models import Team

    noor = make_user("agent", name="Noor")
    team = Team(name="Level 2", members=[agent, noor])
    db.session.add(team)
    db.session.commit()
    make_rule(
        {
            "name": "Round robin",
            "trigger": "ticket.created",
            "actions": [{"type": "assign", "team": "Level 2", "round_robin": True}],
        }
    )
    first, second = make_ticket(), make_ticket()
    db.session.expire_all()
    assignees = [db.session.get(Ticket, t.id).assignee_id for t in (first, second)]
    assert sorted(assignees) == sorted([agent.id, noor.id])
    assert db.session.get(Ticket, first.id).team_id == team.id


def test_reply_from_a_template_in_the_contacts_language(
    make_contact, make_ticket, recording_channel
):
    make_rule(
        {
            "name": "Acknowledge",
            "trigger": "ticket.created",
            "actions": [
                {
                    "type": "reply",
                    "template": {
                        "en": "Hi {{ contact.first_name }}, we got #{{ ticket.number }}.",
                        "el": "Γεια σας {{ contact.first_name }}, λάβαμε το #{{ ticket.number }}.",
                    },
                }
            ],
        }
    )
    greek = make_ticket(contact=make_contact(name="Eleni Papadopoulou", locale="el"))
    hungarian = make_ticket(contact=make_contact(name="Zsofia Kovacs", locale="hu"))
    from helpdesk.models import Direction, Message

    def reply_of(ticket):
        return db.session.scalars(
            select(Message).where(
                Message.ticket_id == ticket.id, Message.direction == Direction.OUTBOUND
            )
        ).one()

    assert reply_of(greek).text == f"Γεια σας Eleni, λάβαμε το #{greek.id}."
    assert (
        reply_of(hungarian).text == f"Hi Zsofia, we got #{hungarian.id}."
    )  # falls back to English
    assert len(recording_channel.sent) == 2  # on the ticket's channel


def test_templates_cannot_reach_outside_the_sandbox(make_ticket, recording_channel):
    rule = make_rule(
        {
            "name": "Sneaky",
            "trigger": "ticket.created",
            "actions": [{"type": "note", "body": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}],
        }
    )
    make_ticket()
    [run] = rule_runs(rule)
    assert run.actions[0]["status"] == "error"
    assert "unsafe" in run.actions[0]["error"] or "not safely" in run.actions[0]["error"]


def test_set_attributes_and_status(make_ticket):
    from helpdesk.models import CustomAttribute

    db.session.add(CustomAttribute(applies_to="ticket", key="source", label="Source", type="text"))
    db.session.commit()
    make_rule(
        {
            "name": "Mark",
            "trigger": "ticket.created",
            "actions": [
                {"type": "set_attributes", "values": {"source": "rule"}},
                {"type": "set_status", "status": "pending"},
            ],
        }
    )
    ticket = make_ticket()
    db.session.expire_all()
    ticket = db.session.get(Ticket, ticket.id)
    assert ticket.attributes == {"source": "rule"}
    assert ticket.status is TicketStatus.PENDING


def test_an_incentive_action_with_an_unknown_policy_is_recorded_as_an_error(make_ticket, agent):
    rule = make_rule(
        {
            "name": "Apology",
            "trigger": "ticket.solved",
            "actions": [{"type": "issue_incentive", "policy": "no-such-policy"}],
        }
    )
    ticket = make_ticket()
    set_status(ticket, TicketStatus.SOLVED, actor=Actor.for_user(agent))
    db.session.commit()
    [run] = rule_runs(rule)
    assert run.outcome == "error"
    assert run.actions == [
        {
            "index": 0,
            "type": "issue_incentive",
            "status": "error",
            "error": "no incentive policy 'no-such-policy'",
        }
    ]
