"""Admin pages: only admins get in; users, teams, canned responses, attributes, tokens, audit."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from werkzeug.security import check_password_hash

from helpdesk.extensions import db
from helpdesk.models import ApiToken, AuditEvent, CannedResponse, CustomAttribute, Role, Team, User
from helpdesk.operations.users import find_api_token

ADMIN_PAGES = [
    "/admin/",
    "/admin/users",
    "/admin/teams",
    "/admin/canned",
    "/admin/attributes",
    "/admin/tokens",
    "/admin/audit",
]


def sign_in(client, user):
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True


@pytest.fixture
def admin(client, make_user):
    user = make_user("admin", name="Ada Admin")
    sign_in(client, user)
    return user


def page(response):
    return response.get_data(as_text=True)


def fresh(model, object_id):
    db.session.expire_all()
    return db.session.get(model, object_id)


# --------------------------------------------------------------------- access


@pytest.mark.parametrize("role", ["agent", "read_only"])
@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_non_admins_get_403_on_admin_pages(client, make_user, role, path):
    sign_in(client, make_user(role))
    assert client.get(path).status_code == 403


def test_agent_cannot_create_a_user_by_posting_directly(client, make_user):
    sign_in(client, make_user("agent"))
    response = client.post(
        "/admin/users",
        data={
            "name": "Eve",
            "email": "eve@example.com",
            "role": "admin",
            "password": "password123",
        },
    )
    assert response.status_code == 403
    assert db.session.scalar(select(User).where(User.email == "eve@example.com")) is None


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_pages_render_for_admins(client, admin, path):
    response = client.get(path)
    assert response.status_code == 200
    assert 'aria-current="page"' in page(response)


# ---------------------------------------------------------------------- users


def test_admin_creates_a_user(client, admin):
    response = client.post(
        "/admin/users",
        data={
            "name": "Grace Hopper",
            "email": "Grace@Example.com",
            "role": "agent",
            "password": "s3cret-pass",
        },
    )
    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.email == "grace@example.com"))
    assert user.role is Role.AGENT and check_password_hash(user.password_hash, "s3cret-pass")
    assert "Grace Hopper can now sign in." in page(client.get("/admin/users"))


def test_user_form_shows_errors_beside_the_fields(client, admin):
    response = client.post(
        "/admin/users", data={"name": "", "email": "nope", "role": "agent", "password": "short"}
    )
    assert response.status_code == 422
    html = page(response)
    assert (
        'id="name-error"' in html and 'id="email-error"' in html and 'id="password-error"' in html
    )
    assert "At least 8 characters." in html


def test_a_second_user_with_the_same_email_is_refused(client, admin, make_user):
    make_user("agent", email="taken@example.com")
    response = client.post(
        "/admin/users",
        data={
            "name": "Other",
            "email": "TAKEN@example.com",
            "role": "agent",
            "password": "password123",
        },
    )
    assert response.status_code == 422
    assert "exists already" in page(response)


def test_password_hashes_never_appear_on_admin_pages(client, admin, make_user):
    user = make_user("agent")
    for path in ("/admin/users", f"/admin/users/{user.id}", "/admin/audit"):
        html = page(client.get(path))
        assert user.password_hash not in html
        assert "scrypt:" not in html and "pbkdf2:" not in html


def test_admin_changes_role_and_marks_a_user_away(client, admin, make_user):
    user = make_user("agent", name="Grace Hopper")
    response = client.post(
        f"/admin/users/{user.id}/update",
        data={"name": "Grace B. Hopper", "role": "admin", "is_active": "y", "is_away": "y"},
    )
    assert response.status_code == 302
    user = fresh(User, user.id)
    assert (user.name, user.role, user.is_away, user.is_active_user) == (
        "Grace B. Hopper",
        Role.ADMIN,
        True,
        True,
    )
    assert "Away" in page(client.get("/admin/users"))


def test_admin_cannot_remove_their_own_admin_role(client, admin):
    response = client.post(
        f"/admin/users/{admin.id}/update",
        data={"name": admin.name, "role": "agent", "is_active": "y"},
    )
    assert response.status_code == 422
    assert 'id="role-error"' in page(response) and "own admin role" in page(response)
    assert fresh(User, admin.id).role is Role.ADMIN


def test_deactivated_user_cannot_sign_in(client, admin, make_user):
    user = make_user("agent", email="leaver@example.com", password="password123")
    response = client.post(
        f"/admin/users/{user.id}/update", data={"name": user.name, "role": "agent"}
    )
    assert response.status_code == 302
    assert fresh(User, user.id).is_active_user is False

    client.post("/logout")
    response = client.post(
        "/login", data={"email": "leaver@example.com", "password": "password123"}
    )
    assert response.status_code == 401
    assert "Wrong email or password." in page(response)


def test_deactivation_ends_a_session_already_open(client, make_user):
    user = make_user("agent", is_active_user=False)
    sign_in(client, user)
    response = client.get("/crm/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_an_active_user_can_sign_in_with_the_password_an_admin_set(client, admin, make_user):
    user = make_user("agent", email="reset@example.com", password="old-password")
    response = client.post(
        f"/admin/users/{user.id}/password",
        data={"password": "brand-new-pass", "confirm": "brand-new-pass"},
    )
    assert response.status_code == 302
    assert check_password_hash(fresh(User, user.id).password_hash, "brand-new-pass")

    client.post("/logout")
    response = client.post(
        "/login", data={"email": "reset@example.com", "password": "brand-new-pass"}
    )
    assert response.status_code == 302


def test_password_reset_needs_both_entries_to_match(client, admin, make_user):
    user = make_user("agent")
    old_hash = user.password_hash
    response = client.post(
        f"/admin/users/{user.id}/password",
        data={"password": "brand-new-pass", "confirm": "brand-new-pas"},
    )
    assert response.status_code == 422
    assert 'id="confirm-error"' in page(response) and "The two passwords differ." in page(response)
    assert fresh(User, user.id).password_hash == old_hash


def test_unknown_user_is_404(client, admin):
    assert client.get("/admin/users/9999").status_code == 404


# ---------------------------------------------------------------------- teams


def test_admin_creates_a_team_with_members_and_round_robin(client, admin, make_user):
    one, two = make_user("agent", name="One"), make_user("agent", name="Two")
    response = client.post(
        "/admin/teams",
        data={"name": "Billing", "members": [str(one.id), str(two.id)], "round_robin": "y"},
    )
    assert response.status_code == 302
    team = db.session.scalar(select(Team).where(Team.name == "Billing"))
    assert team.is_round_robin and {m.id for m in team.members} == {one.id, two.id}


def test_team_without_a_name_is_refused(client, admin):
    response = client.post("/admin/teams", data={"name": ""})
    assert response.status_code == 422
    assert 'id="name-error"' in page(response)


def test_admin_changes_team_members_and_switches_round_robin_off(client, admin, make_user):
    one, two = make_user("agent", name="One"), make_user("agent", name="Two")
    client.post(
        "/admin/teams", data={"name": "Billing", "members": [str(one.id)], "round_robin": "y"}
    )
    team = db.session.scalar(select(Team).where(Team.name == "Billing"))
    response = client.post(f"/admin/teams/{team.id}", data={"members": [str(two.id)]})
    assert response.status_code == 302
    team = fresh(Team, team.id)
    assert not team.is_round_robin and [m.id for m in team.members] == [two.id]
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "team.updated"))


def test_team_member_must_be_a_listed_agent(client, admin):
    client.post("/admin/teams", data={"name": "Billing"})
    team = db.session.scalar(select(Team).where(Team.name == "Billing"))
    response = client.post(f"/admin/teams/{team.id}", data={"members": ["9999"]})
    assert response.status_code == 422


# ------------------------------------------------------------ canned responses


def test_admin_creates_edits_and_deletes_a_canned_response(client, admin):
    response = client.post(
        "/admin/canned",
        data={
            "title": "Thanks",
            "shortcut": "/Thanks",
            "body": "Hi {{ contact.first_name }}, thanks!",
        },
    )
    assert response.status_code == 302
    canned = db.session.scalar(select(CannedResponse))
    assert canned.shortcut == "thanks"

    response = client.post(
        f"/admin/canned/{canned.id}",
        data={"title": "Thank you", "shortcut": "thanks", "body": "Thanks, {{ contact.name }}."},
    )
    assert response.status_code == 302
    assert fresh(CannedResponse, canned.id).title == "Thank you"

    assert client.post(f"/admin/canned/{canned.id}/delete").status_code == 302
    assert fresh(CannedResponse, canned.id) is None
    actions = set(db.session.scalars(select(AuditEvent.action)))
    assert {
        "canned_response.created",
        "canned_response.updated",
        "canned_response.deleted",
    } <= actions


def test_canned_response_with_an_unknown_placeholder_is_refused_beside_the_body(client, admin):
    response = client.post(
        "/admin/canned",
        data={"title": "Bad", "shortcut": "bad", "body": "Hi {{ contact.password }}"},
    )
    assert response.status_code == 422
    assert 'id="body-error"' in page(response) and "contact.password" in page(response)
    assert db.session.scalar(select(CannedResponse)) is None


def test_canned_response_with_a_broken_template_is_refused(client, admin):
    response = client.post(
        "/admin/canned", data={"title": "Bad", "shortcut": "bad", "body": "Hi {% if %}"}
    )
    assert response.status_code == 422
    assert "not a valid template" in page(response)


def test_canned_response_shortcut_must_be_unique(client, admin):
    client.post("/admin/canned", data={"title": "One", "shortcut": "hi", "body": "Hello"})
    response = client.post("/admin/canned", data={"title": "Two", "shortcut": "HI", "body": "Hey"})
    assert response.status_code == 422
    assert 'id="shortcut-error"' in page(response) and "is taken" in page(response)


# ---------------------------------------------------------- custom attributes


def test_admin_defines_a_choice_attribute_used_by_the_contact_form(client, admin, make_contact):
    response = client.post(
        "/admin/attributes",
        data={
            "applies_to": "contact",
            "key": "tier",
            "label": "Loyalty tier",
            "type": "choice",
            "options": "bronze\nsilver\n\ngold\nsilver",
        },
    )
    assert response.status_code == 302
    definition = db.session.scalar(select(CustomAttribute))
    assert definition.options == ["bronze", "silver", "gold"]
    contact = make_contact("Ada")
    html = page(client.get(f"/crm/contacts/{contact.id}"))
    assert "Loyalty tier" in html and '<option value="silver">silver</option>' in html


def test_choice_attribute_without_options_is_refused(client, admin):
    response = client.post(
        "/admin/attributes",
        data={
            "applies_to": "ticket",
            "key": "area",
            "label": "Area",
            "type": "choice",
            "options": "",
        },
    )
    assert response.status_code == 422
    assert 'id="options-error"' in page(response)


def test_attribute_key_must_be_a_plain_identifier_and_unique(client, admin):
    response = client.post(
        "/admin/attributes",
        data={"applies_to": "contact", "key": "Shoe Size", "label": "Shoe size", "type": "number"},
    )
    assert response.status_code == 422 and 'id="key-error"' in page(response)
    client.post(
        "/admin/attributes",
        data={"applies_to": "contact", "key": "shoe_size", "label": "Shoe size", "type": "number"},
    )
    response = client.post(
        "/admin/attributes",
        data={"applies_to": "contact", "key": "shoe_size", "label": "Size", "type": "text"},
    )
    assert response.status_code == 422 and "exists already" in page(response)
    # The same key is free for tickets.
    response = client.post(
        "/admin/attributes",
        data={"applies_to": "ticket", "key": "shoe_size", "label": "Size", "type": "text"},
    )
    assert response.status_code == 302


def test_admin_relabels_and_deletes_an_attribute(client, admin):
    client.post(
        "/admin/attributes",
        data={
            "applies_to": "contact",
            "key": "tier",
            "label": "Tier",
            "type": "choice",
            "options": "a",
        },
    )
    definition = db.session.scalar(select(CustomAttribute))
    response = client.post(
        f"/admin/attributes/{definition.id}", data={"label": "Loyalty tier", "options": "a\nb"}
    )
    assert response.status_code == 302
    definition = fresh(CustomAttribute, definition.id)
    assert (definition.label, definition.options) == ("Loyalty tier", ["a", "b"])
    assert client.post(f"/admin/attributes/{definition.id}/delete").status_code == 302
    assert fresh(CustomAttribute, definition.id) is None


def test_attribute_relabel_needs_a_label(client, admin):
    client.post(
        "/admin/attributes",
        data={"applies_to": "contact", "key": "k", "label": "K", "type": "text"},
    )
    definition = db.session.scalar(select(CustomAttribute))
    response = client.post(f"/admin/attributes/{definition.id}", data={"label": ""})
    assert response.status_code == 422 and 'id="label-error"' in page(response)


# ----------------------------------------------------------------- API tokens


def test_new_token_is_shown_once_then_only_its_prefix(client, admin):
    response = client.post(
        "/admin/tokens", data={"name": "Shop sync", "scopes": ["orders:write", "contacts:read"]}
    )
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    secret = re.search(r'value="(rpt_[^"]+)"', page(response)).group(1)
    token = find_api_token(secret)
    assert token is not None and token.scopes == ["contacts:read", "orders:write"]

    later = page(client.get("/admin/tokens"))
    assert secret not in later
    assert f"{token.prefix}…" in later


def test_token_needs_a_scope(client, admin):
    response = client.post("/admin/tokens", data={"name": "Nothing"})
    assert response.status_code == 422
    assert "Pick at least one scope." in page(response)
    assert db.session.scalar(select(ApiToken)) is None


def test_token_with_an_unknown_scope_is_refused(client, admin):
    response = client.post("/admin/tokens", data={"name": "Sneaky", "scopes": ["admin:all"]})
    assert response.status_code == 422
    assert db.session.scalar(select(ApiToken)) is None


def test_revoked_token_stops_working_and_stays_listed(client, admin):
    response = client.post("/admin/tokens", data={"name": "Old", "scopes": ["tickets:read"]})
    secret = re.search(r'value="(rpt_[^"]+)"', page(response)).group(1)
    token = find_api_token(secret)
    assert client.post(f"/admin/tokens/{token.id}/revoke").status_code == 302
    db.session.expire_all()
    assert find_api_token(secret) is None
    assert "Revoked" in page(client.get("/admin/tokens"))


# ------------------------------------------------------------------ audit log


def test_audit_log_filters_by_action_and_by_group(client, admin, make_user):
    make_user("agent", name="Audited Person")
    client.post("/admin/canned", data={"title": "Hi", "shortcut": "hi", "body": "Hello"})

    everything = page(client.get("/admin/audit"))
    assert "user.created" in everything and "canned_response.created" in everything

    only_users = page(client.get("/admin/audit?action=user.created"))
    assert '<code dir="ltr">user.created</code>' in only_users
    assert '<code dir="ltr">canned_response.created</code>' not in only_users

    group = page(client.get("/admin/audit?action=canned_response.*"))
    assert '<code dir="ltr">canned_response.created</code>' in group
    assert '<code dir="ltr">user.created</code>' not in group


def test_audit_log_is_paginated(client, admin):
    from helpdesk.actors import Actor
    from helpdesk.operations import audit

    for i in range(55):
        audit.record("test.event", actor=Actor.system(), n=i)
    db.session.commit()
    first = page(client.get("/admin/audit?action=test.event"))
    assert "Page 1 of 2" in first
    assert "Page 2 of 2" in page(client.get("/admin/audit?action=test.event&page=2"))


# ---------------------------------------------------------------- every form


def test_every_admin_form_carries_a_csrf_field(client, admin, make_user):
    user = make_user("agent")
    for path in (
        "/admin/users",
        f"/admin/users/{user.id}",
        "/admin/teams",
        "/admin/canned",
        "/admin/attributes",
        "/admin/tokens",
    ):
        html = page(client.get(path))
        forms = html.count("<form")
        assert forms and html.count('name="csrf_token"') >= forms, path
