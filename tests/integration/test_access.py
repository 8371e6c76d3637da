"""Every route declares who may use it; anonymous visitors get nothing they should not."""

from __future__ import annotations

import pytest

from helpdesk.auth.access import is_public, required_role
from helpdesk.models import Role


def _rules(app):
    return [r for r in app.url_map.iter_rules() if r.endpoint != "static"]


def test_every_endpoint_declares_a_role_or_that_it_is_public(app):
    undeclared = [
        rule.rule
        for rule in _rules(app)
        if not is_public(app.view_functions[rule.endpoint])
        and required_role(app.view_functions[rule.endpoint]) is None
    ]
    assert undeclared == []


def test_anonymous_visitors_are_sent_to_sign_in_or_refused(app, client):
    checked = 0
    for rule in _rules(app):
        view = app.view_functions[rule.endpoint]
        if is_public(view) or "GET" not in rule.methods:
            continue
        url = rule.rule
        for arg in rule.arguments:
            url = (
                url.replace(f"<int:{arg}>", "1")
                .replace(f"<{arg}>", "x")
                .replace(f"<path:{arg}>", "x")
            )
        response = client.get(url)
        assert response.status_code in (302, 401, 403), f"{url} answered {response.status_code}"
        if response.status_code == 302:
            assert "/login" in response.location
        checked += 1
    assert checked > 0


def test_an_undeclared_view_is_refused_by_default(app, client, make_user, login):
    from helpdesk.auth.access import install_default_deny  # noqa: F401  (installed by create_app)

    app.add_url_rule("/undeclared-test-route", "undeclared", lambda: "secret")
    login(make_user("admin"))
    response = client.get("/undeclared-test-route")
    assert response.status_code == 403
    assert b"secret" not in response.data


@pytest.mark.parametrize("role", [Role.READ_ONLY, Role.AGENT])
def test_non_admins_cannot_reach_admin_pages(app, client, make_user, login, role):
    admin_rules = [
        r
        for r in _rules(app)
        if r.rule.startswith("/admin") and "GET" in r.methods and not r.arguments
    ]
    login(make_user(role))
    for rule in admin_rules:
        assert client.get(rule.rule).status_code == 403, rule.rule


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(client, make_user):
    user = make_user("agent")
    wrong = client.post("/login", data={"email": user.email, "password": "nope-nope"})
    unknown = client.post("/login", data={"email": "nobody@example.test", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert b"Wrong email or password" in wrong.data and b"Wrong email or password" in unknown.data


def test_sign_in_does_not_redirect_to_another_site(client, make_user):
    user = make_user("agent")
    response = client.post(
        "/login?next=https://evil.example/", data={"email": user.email, "password": "password123"}
    )
    assert response.status_code == 302
    assert response.location.startswith("/")
