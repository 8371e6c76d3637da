"""SLA clocks on tickets: due times from policies and calendars, pauses, breaches fired once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from automation.rules.testing import make_rule, rule_runs, run, wire
from automation.rules.timers import run_time_rules
from automation.sla.hours import add_business_minutes
from automation.sla.models import TicketSla
from automation.sla.operations import check_breaches, save_calendar, save_policy
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Priority, Ticket, TicketStatus, utcnow
from helpdesk.operations.messages import reply_to_ticket
from helpdesk.operations.tickets import set_priority, set_status


@pytest.fixture
def app(app):
    return wire(app)


@pytest.fixture
def agent(make_user):
    return make_user("agent", name="Sam Support")


def policy(**kw):
    values = {"name": "Standard", "first_response_minutes": 60, "resolution_minutes": 240}
    values.update(kw)
    created = save_policy(**values)
    db.session.commit()
    return created


def clock(ticket):
    db.session.expire_all()
    return db.session.get(TicketSla, ticket.id)


def test_a_new_ticket_gets_due_times_from_the_matching_policy(make_ticket):
    policy()
    ticket = make_ticket()
    sla = clock(ticket)
    assert sla.first_response_due_at == ticket.created_at + timedelta(minutes=60)
    assert sla.resolution_due_at == ticket.created_at + timedelta(minutes=240)


def test_due_times_count_business_hours_of_the_calendar(make_ticket):
    calendar = save_calendar(
        name="Athens office",
        timezone="Europe/Athens",
        hours={d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
        holidays=["2025-03-25"],
    )
    policy(calendar=calendar, first_response_minutes=120)
    ticket = make_ticket()
    expected = add_business_minutes(ticket.created_at, 120, calendar.to_calendar())
    assert clock(ticket).first_response_due_at == expected


def test_policies_match_by_priority_and_the_first_in_order_wins(make_ticket, agent):
    policy(name="Urgent", priorities=["urgent"], first_response_minutes=15, position=1)
    policy(name="Everything else", first_response_minutes=60, position=2)
    normal = make_ticket()
    urgent = make_ticket(priority=Priority.URGENT)
    assert clock(urgent).first_response_due_at == urgent.created_at + timedelta(minutes=15)
    assert clock(normal).first_response_due_at == normal.created_at + timedelta(minutes=60)
    set_priority(normal, Priority.URGENT, actor=Actor.for_user(agent))
    db.session.commit()
    assert clock(normal).first_response_due_at == normal.created_at + timedelta(minutes=15)


def test_no_policy_no_clock(make_ticket):
    assert clock(make_ticket()) is None


def test_a_policy_saved_after_tickets_without_one_applies_to_the_next_ticket(make_ticket):
    # The first ticket caches "no policies"; saving one must forget that at once.
    assert clock(make_ticket()) is None
    policy()
    assert clock(make_ticket()) is not None


def test_a_disabled_last_policy_stops_new_clocks_in_this_process(make_ticket):
    standard = policy()
    assert clock(make_ticket()) is not None
    standard.is_enabled = False
    db.session.commit()
    assert clock(make_ticket()) is None


def test_an_agent_reply_meets_the_first_response_but_an_automatic_one_does_not(make_ticket, agent):
    policy()
    ticket = make_ticket()
    reply_to_ticket(ticket, actor=Actor.automation(None, "auto-ack"), body="We got it")
    db.session.commit()
    assert clock(ticket).first_response_met_at is None
    reply_to_ticket(ticket, actor=Actor.for_user(agent), author=agent, body="Looking now")
    db.session.commit()
    assert clock(ticket).first_response_met_at is not None


def test_pending_pauses_the_resolution_clock(make_ticket, agent):
    policy()
    ticket = make_ticket()
    due = clock(ticket).resolution_due_at
    set_status(ticket, TicketStatus.PENDING, actor=Actor.for_user(agent))
    db.session.commit()
    sla = clock(ticket)
    assert sla.paused_at is not None
    sla.paused_at -= timedelta(hours=2)  # as if it waited two hours on the customer
    db.session.commit()
    set_status(ticket, TicketStatus.OPEN, actor=Actor.for_user(agent))
    db.session.commit()
    sla = clock(ticket)
    assert sla.paused_at is None
    assert sla.paused_minutes == pytest.approx(120, abs=0.1)
    assert sla.resolution_due_at - due == pytest.approx(
        timedelta(minutes=120), abs=timedelta(seconds=6)
    )


def test_without_pause_pending_keeps_the_clock_running(make_ticket, agent):
    policy(pause_when_pending=False)
    ticket = make_ticket()
    set_status(ticket, TicketStatus.PENDING, actor=Actor.for_user(agent))
    db.session.commit()
    assert clock(ticket).paused_at is None


def test_breaches_fire_their_triggers_once(make_ticket):
    policy()
    make_rule(
        {
            "name": "Late first reply",
            "trigger": "sla.first_response_breached",
            "actions": [{"type": "set_priority", "priority": "urgent"}],
        }
    )
    make_rule(
        {
            "name": "Late resolution",
            "trigger": "sla.resolution_breached",
            "conditions": {
                "all": [{"field": "ticket.sla_breached", "operator": "is", "value": True}]
            },
            "actions": [{"type": "set_tags", "add": ["late"]}],
        }
    )
    ticket = make_ticket()
    assert run(check_breaches) == {"first_response": 0, "resolution": 0}
    later = utcnow() + timedelta(hours=5)
    assert check_breaches(later) == {"first_response": 1, "resolution": 1}
    assert check_breaches(later + timedelta(minutes=1)) == {"first_response": 0, "resolution": 0}
    db.session.expire_all()
    ticket = db.session.get(Ticket, ticket.id)
    assert ticket.priority is Priority.URGENT and [t.name for t in ticket.tags] == ["late"]
    assert sorted(r.trigger for r in rule_runs()) == [
        "sla.first_response_breached",
        "sla.resolution_breached",
    ]
    assert clock(ticket).is_breached


def test_a_solved_or_paused_ticket_does_not_breach_resolution(make_ticket, agent):
    policy(first_response_minutes=None)
    solved, pending = make_ticket(), make_ticket()
    set_status(solved, TicketStatus.SOLVED, actor=Actor.for_user(agent))
    set_status(pending, TicketStatus.PENDING, actor=Actor.for_user(agent))
    db.session.commit()
    assert check_breaches(utcnow() + timedelta(days=2)) == {"first_response": 0, "resolution": 0}


def test_due_within_time_trigger_fires_once_per_due_time(make_ticket):
    policy(resolution_minutes=90, first_response_minutes=None)
    rule = make_rule(
        {
            "name": "Nearly late",
            "trigger": {"type": "sla.due_within", "hours": 1, "target": "resolution"},
            "actions": [{"type": "set_tags", "add": ["due-soon"]}],
        }
    )
    ticket = make_ticket()
    db.session.commit()
    assert run_time_rules(utcnow()) == 0  # due in 90 minutes: not yet within the hour
    soon = utcnow() + timedelta(minutes=45)
    assert run_time_rules(soon) == 1
    assert run_time_rules(soon + timedelta(minutes=5)) == 0
    db.session.expire_all()
    assert [t.name for t in db.session.get(Ticket, ticket.id).tags] == ["due-soon"]
    assert len(rule_runs(rule)) == 1
