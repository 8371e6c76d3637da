"""The engine's column-read facts equal the facts built from the loaded records, for every trigger."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from automation.rules.facts import build_facts, event_facts, load_subject
from automation.rules.schema import FIELDS
from automation.rules.testing import make_rule, rule_runs, wire
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import (
    Direction,
    Message,
    Order,
    OrderStatus,
    Priority,
    Team,
    Ticket,
    utcnow,
)
from helpdesk.operations.orders import record_order
from helpdesk.operations.tickets import set_priority

SHOP = Actor("api", 1, "shop")
NOW = utcnow()
ALL_FIELDS = frozenset(FIELDS)


@pytest.fixture
def app(app):
    return wire(app)


@pytest.fixture
def world(make_user, make_contact, make_ticket):
    """A contact with orders, a ticket with tags, team, assignee and attributes, and the
    message, survey and activity events name."""
    from automation.rules.activities import report_activity
    from automation.surveys.models import Survey

    agent = make_user("agent", name="Sam Support", email="sam@example.test")
    team = Team(name="Billing", members=[agent])
    db.session.add(team)
    contact = make_contact(name="Eleni Papadopoulou", email="eleni@example.test", locale="el")
    contact.attributes = {"vip": True}
    for n, (total, status, refunded) in enumerate(
        [
            ("100.00", OrderStatus.PAID, None),
            ("80.00", OrderStatus.PARTIALLY_REFUNDED, "30.00"),
            ("50.00", OrderStatus.PENDING, None),
        ]
    ):
        record_order(
            actor=SHOP,
            external_id=f"F-{n}",
            total=Decimal(total),
            currency="EUR",
            status=status,
            refunded_total=Decimal(refunded) if refunded else None,
            contact=contact,
        )
    db.session.commit()
    ticket = make_ticket(
        contact=contact,
        subject="Chargeback on my card",
        priority=Priority.HIGH,
        team=team,
        assignee=agent,
        tags=["vip", "billing"],
        language="el",
    )
    ticket.attributes = {"plan": "enterprise"}
    ticket.first_response_at = ticket.created_at + timedelta(minutes=250)
    message = Message(
        ticket_id=ticket.id,
        direction=Direction.INBOUND,
        channel="email",
        contact_id=contact.id,
        subject="Re: Chargeback",
        text="I want a refund",
    )
    survey = Survey(
        kind="csat",
        ticket_id=ticket.id,
        contact_id=contact.id,
        nonce="facts-test",
        answered_at=NOW,
        score=2,
        comment="Too slow",
    )
    db.session.add_all([message, survey])
    activity, _ = report_activity(contact, "review", actor=SHOP, data={"stars": 5})
    db.session.commit()
    order_id = db.session.scalar(select(Order.id).where(Order.external_id == "F-1"))
    return {
        "ticket.updated": {
            "ticket_id": ticket.id,
            "changes": {"priority": ["normal", "high"]},
            "actor_kind": "user",
        },
        "message.received": {
            "ticket_id": ticket.id,
            "message_id": message.id,
            "actor_kind": "contact",
        },
        "survey.answered": {
            "survey_id": survey.id,
            "ticket_id": ticket.id,
            "contact_id": contact.id,
            "actor_kind": "contact",
        },
        "order.paid": {"order_id": order_id, "contact_id": contact.id, "actor_kind": "api"},
        "activity.reported": {
            "activity_id": activity.id,
            "contact_id": contact.id,
            "actor_kind": "api",
        },
        "contact.created": {"contact_id": contact.id, "actor_kind": "system"},
    }


def model_facts(trigger, refs):
    return build_facts(load_subject(trigger, refs), now=NOW).as_dict()


@pytest.mark.parametrize(
    "trigger",
    [
        "ticket.updated",
        "message.received",
        "survey.answered",
        "order.paid",
        "activity.reported",
        "contact.created",
    ],
)
@pytest.mark.parametrize("fields", [ALL_FIELDS, frozenset()], ids=["read-ahead", "lazy"])
def test_column_facts_equal_the_facts_of_the_loaded_records(world, trigger, fields):
    refs = world[trigger]
    expected = model_facts(trigger, refs)
    db.session.expire_all()
    facts = event_facts(trigger, refs, now=NOW, fields=fields)
    assert facts is not None
    assert facts.as_dict() == expected


def test_the_facts_compared_are_the_interesting_ones(world):
    """Guards the comparison above against comparing empty or default values."""
    facts = model_facts("survey.answered", world["survey.answered"])
    assert facts["ticket.tags"] == ["billing", "vip"]
    assert facts["ticket.team"] == "Billing"
    assert facts["ticket.assignee"] == "sam@example.test"
    assert facts["ticket.status"] == "new" and facts["ticket.priority"] == "high"
    assert facts["ticket.first_response_minutes"] == 250
    assert facts["ticket.attributes"] == {"plan": "enterprise"}
    assert facts["ticket.csat_score"] == 2
    assert facts["contact.email"] == "eleni@example.test"
    assert facts["contact.language"] == "el"
    assert facts["contact.attributes"] == {"vip": True}
    assert facts["contact.order_count"] == 2
    assert facts["contact.total_spend"] == 150.0
    assert facts["contact.ticket_count"] == 1
    assert facts["survey.comment"] == "Too slow"


def test_a_condition_on_a_ticket_attribute_reads_the_column_facts(world):
    facts = event_facts("ticket.updated", world["ticket.updated"], fields=ALL_FIELDS)
    assert facts is not None
    assert facts.get("ticket.attributes.plan") == "enterprise"
    assert facts.get("contact.attributes.vip") is True
    assert facts.get("contact.attributes.missing") is None


def test_a_merged_ticket_has_no_facts_and_runs_no_rules(make_ticket, make_user):
    rule = make_rule(
        {
            "name": "Tag updates",
            "trigger": "ticket.updated",
            "actions": [{"type": "set_tags", "add": ["seen"]}],
        }
    )
    source, target = make_ticket(), make_ticket()
    source.merged_into_id = target.id
    db.session.commit()
    assert event_facts("ticket.updated", {"ticket_id": source.id}) is None
    set_priority(source, Priority.HIGH, actor=Actor.for_user(make_user("agent")))
    db.session.commit()
    assert rule_runs(rule) == []


def test_a_ticket_trigger_without_its_ticket_has_no_facts(app):
    assert event_facts("ticket.solved", {"ticket_id": 999_999}) is None
    assert event_facts("ticket.solved", {}) is None


def test_a_contact_that_is_gone_gives_no_contact_facts(app):
    facts = event_facts("contact.created", {"contact_id": 999_999}, fields=ALL_FIELDS)
    assert facts is not None
    assert facts.get("contact.name") is None
    assert facts.get("contact.order_count") is None
    assert facts.get("contact.email") is None


def test_column_facts_see_changes_not_yet_flushed(make_ticket):
    ticket = make_ticket()
    ticket.priority = Priority.URGENT  # pending in this session, as the model path would see it
    facts = event_facts("ticket.updated", {"ticket_id": ticket.id})
    assert facts is not None and facts.get("ticket.priority") == "urgent"
    db.session.rollback()
    assert db.session.get(Ticket, ticket.id).priority is Priority.NORMAL
