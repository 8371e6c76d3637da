"""The API's front door: tokens and scopes, JSON errors, rate limits, the OpenAPI document."""

from __future__ import annotations

from datetime import timedelta

import pytest

from helpdesk.actors import Actor
from helpdesk.api.openapi import OPERATIONS, flask_rule_to_openapi
from helpdesk.extensions import db
from helpdesk.models import ApiToken
from helpdesk.operations.users import SCOPES, create_api_token, revoke_api_token


@pytest.fixture
def make_token(app):
    def make(*scopes: str) -> str:
        _, secret = create_api_token(
            actor=Actor.system("test"), name="shop", scopes=list(scopes) or ["all"]
        )
        db.session.commit()
        return secret

    return make


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def assert_json_error(response, status: int, code: str | None = None):
    assert response.status_code == status, response.data[:500]
    assert response.is_json, response.data[:200]
    error = response.get_json()["error"]
    assert error["status"] == status
    assert error["message"]
    if code:
        assert error["code"] == code
    return error


def test_request_without_token_is_refused_with_401_json(client):
    assert_json_error(client.get("/api/v1/tickets"), 401, "unauthorized")


def test_unknown_token_is_refused(client, make_token):
    make_token()
    response = client.get("/api/v1/tickets", headers=bearer("rpt_not-a-real-token"))
    assert_json_error(response, 401)


def test_non_bearer_authorization_is_refused(client, make_token):
    secret = make_token()
    response = client.get("/api/v1/tickets", headers={"Authorization": f"Basic {secret}"})
    assert_json_error(response, 401)


def test_revoked_token_stops_working(client, make_token):
    secret = make_token("tickets:read")
    assert client.get("/api/v1/tickets", headers=bearer(secret)).status_code == 200
    token = db.session.query(ApiToken).one()
    revoke_api_token(token, actor=Actor.system("test"))
    db.session.commit()
    assert_json_error(client.get("/api/v1/tickets", headers=bearer(secret)), 401)


def test_token_without_the_scope_gets_403_naming_it(client, make_token):
    secret = make_token("contacts:read")
    error = assert_json_error(client.get("/api/v1/tickets", headers=bearer(secret)), 403)
    assert error["scope"] == "tickets:read"


def test_use_is_recorded_at_most_once_a_minute(client, make_token):
    secret = make_token("tickets:read")
    client.get("/api/v1/tickets", headers=bearer(secret))
    token = db.session.query(ApiToken).one()
    first = token.last_used_at
    assert first is not None
    client.get("/api/v1/tickets", headers=bearer(secret))
    db.session.refresh(token)
    assert token.last_used_at == first
    token.last_used_at = first - timedelta(minutes=2)
    db.session.commit()
    client.get("/api/v1/tickets", headers=bearer(secret))
    db.session.refresh(token)
    assert token.last_used_at > first


def test_malformed_json_is_a_400_not_a_500(client, make_token):
    secret = make_token()
    response = client.post(
        "/api/v1/messages",
        data=b'{"external_id": "x", ',
        headers={**bearer(secret), "Content-Type": "application/json"},
    )
    assert_json_error(response, 400, "malformed_json")


def test_json_that_is_not_an_object_is_a_400(client, make_token):
    secret = make_token()
    response = client.post("/api/v1/messages", json=["a", "list"], headers=bearer(secret))
    assert_json_error(response, 400, "malformed_json")


def test_oversized_body_is_refused_with_413_json(client, make_token):
    secret = make_token()
    body = {"external_id": "big", "contact": {"email": "a@b.test"}, "text": "x" * 1_100_000}
    response = client.post("/api/v1/messages", json=body, headers=bearer(secret))
    assert_json_error(response, 413, "too_large")


def test_validation_error_names_the_field(client, make_token):
    secret = make_token()
    response = client.post(
        "/api/v1/messages",
        json={"external_id": "v1", "contact": {"email": "not-an-address"}, "text": "hi"},
        headers=bearer(secret),
    )
    assert assert_json_error(response, 422)["field"] == "contact.email"


def test_unknown_field_is_refused_rather_than_ignored(client, make_token):
    secret = make_token()
    response = client.post(
        "/api/v1/messages",
        json={"external_id": "v1", "contact": {"email": "a@b.test"}, "txt": "typo"},
        headers=bearer(secret),
    )
    assert assert_json_error(response, 422)["field"] == "txt"


def test_unknown_id_is_a_404_json(client, make_token):
    secret = make_token()
    assert_json_error(client.get("/api/v1/tickets/999", headers=bearer(secret)), 404, "not_found")
    assert_json_error(client.get("/api/v1/contacts/999", headers=bearer(secret)), 404)
    assert_json_error(client.get("/api/v1/orders/999", headers=bearer(secret)), 404)


def test_unknown_route_and_wrong_method_answer_json(client, make_token):
    secret = make_token()
    assert_json_error(client.get("/api/v1/nothing-here", headers=bearer(secret)), 404)
    assert_json_error(client.delete("/api/v1/tickets", headers=bearer(secret)), 405)


def test_bad_cursor_is_a_422_naming_cursor(client, make_token):
    secret = make_token()
    response = client.get("/api/v1/tickets?cursor=garbage!", headers=bearer(secret))
    assert assert_json_error(response, 422)["field"] == "cursor"


# ------------------------------------------------------------------ OpenAPI


def api_operations(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                found.add((method.lower(), flask_rule_to_openapi(rule.rule)))
    return found


def test_openapi_document_describes_every_route_and_nothing_else(app, client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    described = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert described == api_operations(app)
    assert set(OPERATIONS) == described


def test_openapi_document_names_the_scope_each_operation_needs(client):
    document = client.get("/api/v1/openapi.json").get_json()
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert scheme["x-scopes"] == list(SCOPES)
    assert document["paths"]["/tickets"]["get"]["security"] == [{"bearerAuth": ["tickets:read"]}]
    assert document["paths"]["/messages"]["post"]["x-scope"] == "messages:write"
    assert document["paths"]["/openapi.json"]["get"]["security"] == []


def test_openapi_document_references_only_defined_components(client):
    document = client.get("/api/v1/openapi.json").get_json()
    components = document["components"]

    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(document):
        _, section, name = ref.rsplit("/", 2)
        assert name in components[section], ref
    for path, ops in document["paths"].items():
        names = set(__import__("re").findall(r"{(\w+)}", path))
        for op in ops.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (path, op["operationId"])


# ------------------------------------------------------------------ rate limit


class TestRateLimit:
    @pytest.fixture
    def app_config(self):
        return {"RATELIMIT_ENABLED": True, "RAPPORT_API_RATE_LIMIT": "3/minute"}

    def test_each_token_has_its_own_budget_and_excess_is_a_429_json(self, client, make_token):
        busy, quiet = make_token("tickets:read"), make_token("tickets:read")
        codes = [client.get("/api/v1/tickets", headers=bearer(busy)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert_json_error(client.get("/api/v1/tickets", headers=bearer(busy)), 429)
        assert client.get("/api/v1/tickets", headers=bearer(quiet)).status_code == 200
