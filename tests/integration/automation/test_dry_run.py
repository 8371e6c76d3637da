"""Dry run: replay a rule over past tickets without side effects."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from automation.rules.dry_run import dry_run
from automation.rules.models import RuleRun
from automation.rules.schema import RuleValidationError
from automation.rules.testing import make_rule, wire
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import AuditEvent, Message, Tag, Ticket, TicketStatus, utcnow
from helpdesk.operations.tickets import set_status


@pytest.fixture
def app(app):
    return wire(app)


@dataclass
class FakeResult:
    status: str
    cost: Decimal

    @property
    def is_granted(self):
        return self.status == "granted"


@pytest.fixture
def fake_incentives(monkeypatch):
    """Stand in for grant_incentive so the report's arithmetic is checked on its own."""
    calls = []

    def grant_incentive(policy, *, contact, ticket=None, actor, reason, key=None, dry_run=False):
        calls.append(
            {"policy": policy, "contact": contact.id, "ticket": ticket.id, "dry_run": dry_run}
        )
        vip = "vip" in {t.name for t in ticket.tags}
        return FakeResult("cap_reached" if vip else "granted", Decimal("10.00"))

    module = types.ModuleType("automation.incentives.operations")
    module.grant_incentive = grant_incentive
    monkeypatch.setitem(sys.modules, "automation.incentives.operations", module)
    return calls


def counts():
    return {
        model.__name__: db.session.scalar(select(func.count()).select_from(model))
        for model in (RuleRun, AuditEvent, Message, Tag)
    }


APOLOGY = {
    "name": "Apology for slow first replies",
    "trigger": "ticket.solved",
    "conditions": {"all": [{"field": "ticket.channel", "operator": "is", "value": "email"}]},
    "actions": [
        {"type": "issue_incentive", "policy": "apology-10"},
        {"type": "set_tags", "add": ["apologised"]},
        {"type": "reply", "template": {"en": "Sorry!"}},
    ],
}


def solved_tickets(make_ticket, make_contact):
    actor = Actor.system("test")
    tickets = [make_ticket(contact=make_contact(name=f"C{i}"), channel="email") for i in range(3)]
    tickets.append(make_ticket(channel="sms"))
    from helpdesk.operations.tickets import set_tags

    set_tags(tickets[2], ["vip"], actor=actor)
    for ticket in tickets:
        set_status(ticket, TicketStatus.SOLVED, actor=actor)
    db.session.commit()
    return tickets


def test_dry_run_reports_matches_grants_and_cost_without_side_effects(
    make_ticket, make_contact, fake_incentives
):
    tickets = solved_tickets(make_ticket, make_contact)
    before = counts()
    now = utcnow()
    report = dry_run(APOLOGY, since=now - timedelta(hours=1), until=now + timedelta(hours=1))
    db.session.commit()
    assert report.evaluated == 4 and report.matched == 3
    assert report.matched_ticket_ids == [t.id for t in tickets[:3]]
    assert [g.issued for g in report.grants] == [True, True, False]
    assert report.total_cost == Decimal("20.00") and report.recipients == 2
    assert report.actions == {"issue_incentive": 3, "set_tags": 3, "reply": 3}
    assert all(call["dry_run"] for call in fake_incentives)
    assert counts() == before
    assert all(
        "apologised" not in {t.name for t in db.session.get(Ticket, t.id).tags} for t in tickets
    )


def test_the_period_limits_what_is_replayed(make_ticket, make_contact, fake_incentives):
    solved_tickets(make_ticket, make_contact)
    now = utcnow()
    report = dry_run(APOLOGY, since=now - timedelta(days=10), until=now - timedelta(days=1))
    assert report.evaluated == 0 and report.grants == []


def test_a_saved_rule_can_be_replayed_and_nothing_runs(make_ticket, make_contact, fake_incentives):
    rule = make_rule(APOLOGY, enabled=False)
    solved_tickets(make_ticket, make_contact)
    now = utcnow()
    report = dry_run(
        rule.definition, since=now - timedelta(hours=1), until=now + timedelta(hours=1)
    )
    assert report.matched == 3
    assert db.session.query(RuleRun).count() == 0


def test_a_malformed_rule_is_refused_with_the_field():
    bad = {
        **APOLOGY,
        "conditions": {"all": [{"field": "ticket.channel", "operator": "bigger", "value": 1}]},
    }
    now = utcnow()
    with pytest.raises(RuleValidationError) as info:
        dry_run(bad, since=now - timedelta(days=1), until=now)
    assert str(info.value) == "conditions.all[0].operator: unknown operator 'bigger'"


def test_dry_run_with_the_real_incentives_package(make_ticket, make_contact):
    from automation.incentives import operations
    from automation.incentives.models import IncentiveGrant
    from automation.incentives.policy import RewardKind

    operations.create_policy(
        actor=Actor.system("test"),
        key="apology-10",
        name="Apology",
        kind=RewardKind.FIXED,
        value=Decimal("10"),
        currency="EUR",
    )
    db.session.commit()
    solved_tickets(make_ticket, make_contact)
    now = utcnow()
    report = dry_run(APOLOGY, since=now - timedelta(hours=1), until=now + timedelta(hours=1))
    db.session.commit()
    assert report.matched == 3
    assert len(report.grants) == 3 and report.errors == []
    assert db.session.query(IncentiveGrant).count() == 0
