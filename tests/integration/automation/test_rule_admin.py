"""Rules admin pages: builder, JSON editor, validation errors, versions, order, runs, dry run."""

from __future__ import annotations

import json

import pytest
from flask import render_template_string

from automation.rules.models import Rule, RuleVersion
from automation.rules.testing import make_rule, wire
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import TicketStatus
from helpdesk.operations.tickets import set_status


@pytest.fixture
def app(app):
    return wire(app)


@pytest.fixture
def admin(make_user, login):
    user = make_user("admin", name="Ada Admin")
    login(user)
    return user


RULE = {
    "name": "Tag VIP solves",
    "trigger": {"type": "ticket.solved"},
    "conditions": {"all": [{"field": "ticket.priority", "operator": "gte", "value": "high"}]},
    "actions": [{"type": "set_tags", "add": ["vip-solved"]}],
}


def test_only_admins_see_the_rules(client, make_user, login):
    login(make_user("agent"))
    assert client.get("/admin/rules").status_code == 403
    assert client.get("/admin/sla").status_code == 403


def test_create_a_rule_with_the_builder_form(client, admin):
    form = {
        "mode": "builder",
        "name": "Urgent refunds",
        "trigger_type": "message.received",
        "match": "all",
        "c-0-field": "message.body",
        "c-0-operator": "contains",
        "c-0-value": "refund",
        "c-1000-field": "ticket.channel",
        "c-1000-operator": "in",
        "c-1000-value": "email, sms",
        "a-0-type": "set_priority",
        "a-0-value": "urgent",
        "a-1-type": "reply",
        "a-1-value": "Hi {{ contact.first_name }}",
        "a-1-text-el": "Γεια",
        "enabled": "1",
    }
    response = client.post("/admin/rules/new", data=form)
    assert response.status_code == 302
    rule = db.session.query(Rule).one()
    assert rule.is_enabled and rule.trigger_type == "message.received"
    assert rule.definition["conditions"] == {
        "all": [
            {"field": "message.body", "operator": "contains", "value": "refund"},
            {"field": "ticket.channel", "operator": "in", "value": ["email", "sms"]},
        ]
    }
    assert rule.definition["actions"][1] == {
        "type": "reply",
        "template": {"el": "Γεια", "en": "Hi {{ contact.first_name }}"},
    }
    page = client.get(f"/admin/rules/{rule.id}").get_data(as_text=True)
    assert "Urgent refunds" in page and 'value="refund"' in page


def test_malformed_rule_json_is_rejected_naming_the_field(client, admin):
    bad = json.loads(json.dumps(RULE))
    bad["conditions"]["all"][0]["operator"] = "bigger"
    response = client.post("/admin/rules/new", data={"mode": "json", "json": json.dumps(bad)})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "conditions.all[0].operator" in html and "unknown operator &#39;bigger&#39;" in html
    assert db.session.query(Rule).count() == 0
    broken = client.post("/admin/rules/new", data={"mode": "json", "json": "{nope"})
    assert broken.status_code == 422 and "not valid JSON" in broken.get_data(as_text=True)


def test_builder_errors_name_the_field_too(client, admin):
    form = {
        "mode": "builder",
        "name": "x",
        "trigger_type": "ticket.solved",
        "c-0-field": "ticket.reopen_count",
        "c-0-operator": "gt",
        "c-0-value": "many",
        "a-0-type": "set_tags",
        "a-0-value": "+x",
    }
    response = client.post("/admin/rules/new", data=form)
    assert response.status_code == 422
    assert "conditions.all[0].value" in response.get_data(as_text=True)


def test_editing_makes_a_new_version_and_old_versions_stay(client, admin):
    client.post("/admin/rules/new", data={"mode": "json", "json": json.dumps(RULE)})
    rule = db.session.query(Rule).one()
    changed = {**RULE, "actions": [{"type": "set_tags", "add": ["changed"]}]}
    client.post(f"/admin/rules/{rule.id}", data={"mode": "json", "json": json.dumps(changed)})
    client.post(
        f"/admin/rules/{rule.id}", data={"mode": "json", "json": json.dumps(changed)}
    )  # unchanged
    versions = db.session.query(RuleVersion).order_by(RuleVersion.number).all()
    assert [v.number for v in versions] == [1, 2]
    assert versions[0].definition["actions"][0]["add"] == ["vip-solved"]
    history = client.get(f"/admin/rules/{rule.id}/versions").get_data(as_text=True)
    assert "v1" in history and "v2" in history
    client.post(f"/admin/rules/{rule.id}/versions/{versions[0].id}/restore")
    db.session.expire_all()
    assert rule.current_version.number == 3
    assert rule.definition["actions"][0]["add"] == ["vip-solved"]


def test_toggle_and_reorder(client, admin):
    first = make_rule({**RULE, "name": "First"}, enabled=False)
    second = make_rule({**RULE, "name": "Second"}, enabled=False)
    client.post(f"/admin/rules/{first.id}/toggle", data={"enabled": "1"})
    client.post(f"/admin/rules/{second.id}/move", data={"direction": "up"})
    db.session.expire_all()
    assert first.is_enabled and not second.is_enabled
    names = [r.name for r in db.session.query(Rule).order_by(Rule.position)]
    assert names == ["Second", "First"]
    page = client.get("/admin/rules").get_data(as_text=True)
    assert page.index("Second") < page.index("First")


def test_run_log_and_ticket_partial_show_what_ran(client, admin, make_ticket):
    rule = make_rule({**RULE, "conditions": {}})
    ticket = make_ticket()
    set_status(ticket, TicketStatus.SOLVED, actor=Actor.for_user(admin))
    db.session.commit()
    log = client.get("/admin/rules/runs").get_data(as_text=True)
    assert "Tag VIP solves" in log and "set_tags" in log
    assert client.get(f"/admin/rules/{rule.id}/runs").status_code == 200
    with client.application.test_request_context():
        from flask_login import login_user

        login_user(admin)
        html = render_template_string('{% include "rules/_ticket_runs.html" %}', ticket=ticket)
    assert "Tag VIP solves" in html and "v1" in html and "ticket.solved" in html


def test_dry_run_page(client, admin, make_ticket):
    ticket = make_ticket()
    set_status(ticket, TicketStatus.SOLVED, actor=Actor.for_user(admin))
    db.session.commit()
    page = client.post(
        "/admin/rules/dry-run", data={"json": json.dumps({**RULE, "conditions": {}})}
    )
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-figure="matched">1<' in html
    bad = client.post(
        "/admin/rules/dry-run", data={"json": json.dumps({**RULE, "trigger": "nope"})}
    )
    assert bad.status_code == 422 and "trigger.type" in bad.get_data(as_text=True)


def test_new_rule_and_sla_pages_render(client, admin):
    assert client.get("/admin/rules/new").status_code == 200
    assert client.get("/admin/rules/new?mode=json").status_code == 200
    assert client.get("/admin/sla").status_code == 200
    response = client.post(
        "/admin/sla/calendars",
        data={
            "name": "Budapest",
            "timezone": "Europe/Budapest",
            "hours": json.dumps({"mon": [["09:00", "17:00"]]}),
            "holidays": "2025-12-25\n2025-12-26",
        },
    )
    assert response.status_code == 302
    bad = client.post(
        "/admin/sla/calendars", data={"name": "X", "timezone": "Nowhere/City", "hours": "{}"}
    )
    assert bad.status_code == 422 and "timezone" in bad.get_data(as_text=True)
    policy = client.post(
        "/admin/sla/policies",
        data={"name": "Std", "first_response_minutes": "60", "priorities": ["high"]},
    )
    assert policy.status_code == 302
