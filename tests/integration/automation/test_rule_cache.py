"""The engine caches each trigger's enabled rules; every rule change is still seen in time.

In the process that makes a change, at once; in any other, within ``RULES_TTL`` seconds,
except that a matched rule is always checked against its row before it acts.
"""

from __future__ import annotations

import pytest
from sqlalchemy import update

from automation.rules import engine
from automation.rules.models import Rule
from automation.rules.operations import (
    create_rule,
    delete_rule,
    move_rule,
    set_rule_enabled,
    update_rule,
)
from automation.rules.testing import make_rule, rule_runs, wire
from helpdesk import jobs, readcache
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Priority, Ticket
from helpdesk.operations.tickets import set_priority

ADMIN = Actor.system("test admin")


@pytest.fixture
def app(app):
    return wire(app)


@pytest.fixture
def agent(make_user):
    return Actor.for_user(make_user("agent"))


@pytest.fixture
def ticket(make_ticket):
    return make_ticket()


@pytest.fixture
def update_ticket(ticket, agent):
    """Fire one ticket.updated by an agent (the rules job runs at once in tests)."""
    priorities = iter([Priority.HIGH, Priority.LOW] * 10)

    def fire():
        set_priority(db.session.get(Ticket, ticket.id), next(priorities), actor=agent)
        db.session.commit()

    return fire


@pytest.fixture
def elsewhere(app):
    """Another process: its own app, so its own rules cache and database connections."""
    from helpdesk import create_app

    keys = (
        "TESTING",
        "SECRET_KEY",
        "SQLALCHEMY_DATABASE_URI",
        "INSTANCE_PATH",
        "RAPPORT_JOBS_IMMEDIATE",
        "RAPPORT_EMBEDDED_WORKER",
    )
    other = wire(create_app({key: app.config[key] for key in keys}))
    jobs.bind_app(app)  # jobs keep running in this test's app
    yield other
    with other.app_context():
        db.engine.dispose()


def definition(name, tag, conditions=None):
    return {
        "name": name,
        "trigger": "ticket.updated",
        "conditions": conditions or {},
        "actions": [{"type": "set_tags", "add": [tag]}],
    }


def tags(ticket):
    db.session.expire_all()
    return sorted(t.name for t in db.session.get(Ticket, ticket.id).tags)


def later(monkeypatch, seconds):
    """Move the rules cache's clock on, as if ``seconds`` had passed."""
    now = readcache.time.monotonic() + seconds
    monkeypatch.setattr(readcache.time, "monotonic", lambda: now)


def test_the_rules_of_a_trigger_are_read_once_and_then_come_from_the_cache(update_ticket):
    rule = make_rule(definition("Tag", "seen"))
    update_ticket()
    first = engine.rules_for("ticket.updated")
    update_ticket()
    assert engine.rules_for("ticket.updated") is first
    assert [ref.rule_id for ref, _ in first.rules] == [rule.id]
    assert len(rule_runs(rule)) == 2


def test_a_new_rule_is_applied_on_the_next_event(ticket, update_ticket):
    update_ticket()  # caches "no rules"
    make_rule(definition("Tag", "new-rule"))
    update_ticket()
    assert tags(ticket) == ["new-rule"]


def test_an_edited_rule_applies_its_new_conditions_on_the_next_event(ticket, update_ticket):
    rule = make_rule(
        definition(
            "Low only",
            "edited",
            {"all": [{"field": "ticket.priority", "operator": "is", "value": "urgent"}]},
        )
    )
    update_ticket()
    assert tags(ticket) == []
    update_rule(db.session.get(Rule, rule.id), definition("Any", "edited"), actor=ADMIN)
    db.session.commit()
    update_ticket()
    assert tags(ticket) == ["edited"]
    assert [run.version_number for run in rule_runs(rule)] == [2]


def test_a_disabled_rule_is_no_longer_applied(ticket, update_ticket):
    rule = make_rule(definition("Tag", "on"))
    update_ticket()
    set_rule_enabled(db.session.get(Rule, rule.id), False, actor=ADMIN)
    db.session.commit()
    assert engine.enabled_rules("ticket.updated") == []
    assert not engine.has_enabled_rules("ticket.updated")
    update_ticket()
    assert len(rule_runs(rule)) == 1


def test_a_deleted_rule_is_no_longer_applied(ticket, update_ticket):
    rule = make_rule(definition("Tag", "on"))
    update_ticket()
    delete_rule(db.session.get(Rule, rule.id), actor=ADMIN)
    db.session.commit()
    assert engine.enabled_rules("ticket.updated") == []
    update_ticket()
    assert rule_runs() == []


def test_moving_a_rule_changes_the_order_rules_run_in_on_the_next_event(update_ticket):
    first = make_rule(definition("First", "a"))
    second = make_rule(definition("Second", "b"))
    update_ticket()
    move_rule(db.session.get(Rule, second.id), -1, actor=ADMIN)
    db.session.commit()
    update_ticket()
    assert [run.rule_id for run in rule_runs()] == [first.id, second.id, second.id, first.id]


def test_rolling_back_a_rule_change_forgets_what_was_read_in_between(app):
    create_rule(definition("Never saved", "never"), actor=ADMIN, enabled=True)
    assert engine.has_enabled_rules("ticket.updated")  # read inside the transaction
    db.session.rollback()
    assert not engine.has_enabled_rules("ticket.updated")


def test_a_rule_disabled_in_another_process_stops_at_once_though_the_list_is_cached(
    update_ticket, elsewhere
):
    rule_id = make_rule(definition("Tag", "on")).id
    update_ticket()
    db.session.commit()  # SQLite: hold no transaction while the other process writes
    with elsewhere.app_context():
        set_rule_enabled(db.session.get(Rule, rule_id), False, actor=ADMIN)
        db.session.commit()
    assert engine.enabled_rules("ticket.updated")  # still cached here
    update_ticket()
    assert len(rule_runs()) == 1


def test_a_rule_edited_in_another_process_acts_with_its_current_version(
    ticket, update_ticket, elsewhere
):
    rule_id = make_rule(definition("Tag", "old")).id
    update_ticket()
    db.session.commit()  # SQLite: hold no transaction while the other process writes
    with elsewhere.app_context():
        rule = db.session.get(Rule, rule_id)
        version_id = update_rule(rule, definition("Tag", "new"), actor=ADMIN).id
        db.session.commit()
    stale = engine.rules_for("ticket.updated")
    assert [ref.version_id for ref, _ in stale.rules] != [version_id]  # still cached here
    update_ticket()
    assert tags(ticket) == ["new", "old"]
    assert [run.version_number for run in rule_runs()] == [1, 2]


def test_a_rule_added_in_another_process_runs_once_the_cached_list_expires(
    ticket, update_ticket, elsewhere, monkeypatch
):
    make_rule(definition("Here", "here"))
    update_ticket()
    db.session.commit()  # SQLite: hold no transaction while the other process writes
    with elsewhere.app_context():
        create_rule(definition("There", "there"), actor=ADMIN, enabled=True)
        db.session.commit()
    update_ticket()
    assert tags(ticket) == ["here"]  # within the bound: not seen yet
    later(monkeypatch, engine.RULES_TTL + 0.1)
    update_ticket()
    assert tags(ticket) == ["here", "there"]


def test_a_rule_switched_off_behind_the_cache_does_not_run(update_ticket):
    rule = make_rule(definition("Tag", "on"))
    update_ticket()
    db.session.execute(update(Rule).where(Rule.id == rule.id).values(is_enabled=False))
    db.session.commit()
    update_ticket()
    assert len(rule_runs(rule)) == 1
