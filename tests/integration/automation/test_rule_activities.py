"""POST /api/v1/activities: shops report what customers did; activity.reported rules act on it."""

from __future__ import annotations

import pytest

from automation.rules.models import ReportedActivity
from automation.rules.testing import make_rule, rule_runs, webhook_receiver, wire
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.operations.users import create_api_token


@pytest.fixture
def app(app):
    return wire(app)


@pytest.fixture
def token(app):
    _, secret = create_api_token(
        actor=Actor.system("test"), name="shop", scopes=["activities:write"]
    )
    db.session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_a_reported_activity_fires_activity_rules(client, token):
    with webhook_receiver() as hook:
        rule = make_rule(
            {
                "name": "Thank reviewers",
                "trigger": "activity.reported",
                "conditions": {
                    "all": [
                        {"field": "activity.type", "operator": "is", "value": "review_approved"},
                        {"field": "activity.data.stars", "operator": "gte", "value": 4},
                    ]
                },
                "actions": [{"type": "webhook", "url": hook.url}],
            }
        )
        body = {
            "contact": {"email": "Reviewer@Example.test", "name": "Rita"},
            "type": "review_approved",
            "data": {"stars": 5, "product": "kettle"},
            "external_id": "rev-1",
        }
        response = client.post("/api/v1/activities", json=body, headers=token)
        assert response.status_code == 201, response.json
        assert response.json["created"] is True and response.json["type"] == "review_approved"
        low = client.post(
            "/api/v1/activities",
            headers=token,
            json={**body, "external_id": "rev-2", "data": {"stars": 2}},
        )
        assert low.status_code == 201
        assert len(hook.requests) == 1
        assert hook.requests[0].json["contact"]["email"] == "reviewer@example.test"
    [run] = rule_runs(rule)
    assert run.trigger == "activity.reported" and run.subject.startswith("activity:")


def test_the_same_report_twice_is_stored_once(client, token):
    body = {
        "contact": {"phone": "+30 210 555 0100"},
        "type": "store_visit",
        "external_id": "visit-9",
    }
    assert client.post("/api/v1/activities", json=body, headers=token).status_code == 201
    again = client.post("/api/v1/activities", json=body, headers=token)
    assert again.status_code == 200 and again.json["created"] is False
    assert db.session.query(ReportedActivity).count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "store_visit"}, "contact"),
        ({"contact": {}, "type": "store_visit"}, "contact"),
        ({"contact": {"email": "a@b.co"}, "type": "Shared Post!"}, "type"),
        ({"contact": {"email": "a@b.co"}}, "type"),
        ({"contact": {"email": "a@b.co"}, "type": "x", "data": [1]}, "data"),
        ({"contact": {"email": "a@b.co"}, "type": "x", "colour": "red"}, "colour"),
    ],
)
def test_bad_reports_name_the_field(client, token, body, field):
    response = client.post("/api/v1/activities", json=body, headers=token)
    assert response.status_code == 422
    assert response.json["error"]["field"] == field


def test_a_token_is_required(client):
    assert client.post("/api/v1/activities", json={}).status_code == 401
