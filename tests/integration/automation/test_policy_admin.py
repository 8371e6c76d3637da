"""Incentive policy admin pages: list with budget use, create, edit as a new version,
validation errors beside the fields, switching on and off, CSRF and roles."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from automation.incentives.models import IncentivePolicy
from automation.incentives.operations import create_policy, get_policy, grant_incentive
from automation.incentives.policy import BudgetPeriod, RewardKind
from helpdesk.actors import Actor
from helpdesk.extensions import db

NEW = "/admin/incentives/policies/new"


@pytest.fixture
def admin(make_user, login):
    user = make_user("admin", name="Ada Admin")
    login(user)
    return user


def page(response) -> str:
    return response.get_data(as_text=True)


def versions(key: str) -> list[IncentivePolicy]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(IncentivePolicy)
            .where(IncentivePolicy.key == key)
            .order_by(IncentivePolicy.version)
        )
    )


def field_error(html: str, field: str) -> str:
    """The error list rendered right under ``field`` (empty when there is none)."""
    found = re.search(rf'<ul class="rp-field-error" id="{field}-error">(.*?)</ul>', html, re.S)
    return re.sub(r"<[^>]+>", "", found.group(1)).strip() if found else ""


def form(**overrides) -> dict[str, str]:
    data = {
        "key": "late-delivery",
        "name": "Late delivery apology",
        "description": "10% off after a late parcel.",
        "kind": "percentage",
        "value": "10",
        "currency": "",
        "valid_days": "60",
        "valid_until": "",
        "minimum_order": "20",
        "is_holder_only": "holder",
        "cap_count": "2",
        "cap_window_days": "90",
        "budget_amount": "300",
        "budget_period": "month",
        "approval_threshold": "",
        "cost_estimate": "6",
        "restores_on_refund": "y",
        "conditions": '{"triggers": ["ticket.closed"], "min_reopens": 1}',
        "options": "",
        "is_active": "y",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def existing(**terms) -> IncentivePolicy:
    policy = create_policy(
        actor=Actor.system("test"),
        key=terms.pop("key", "feedback"),
        name=terms.pop("name", "Feedback voucher"),
        kind=terms.pop("kind", RewardKind.FIXED),
        value=terms.pop("value", Decimal("5")),
        **{"currency": "EUR", **terms},
    )
    db.session.commit()
    return policy


def edit_form(policy: IncentivePolicy, **overrides) -> dict[str, str]:
    """What the edit page submits when nothing is touched, with ``overrides``."""
    data = form(
        key=None,
        name=policy.name,
        description=policy.description,
        kind=policy.kind.value,
        value=str(policy.value),
        currency=policy.currency or "",
        valid_days=str(policy.valid_days or ""),
        minimum_order=str(policy.minimum_order or ""),
        cap_count=str(policy.cap_count or ""),
        cap_window_days=str(policy.cap_window_days or ""),
        budget_amount=str(policy.budget_amount or ""),
        budget_period=policy.budget_period.value if policy.budget_period else "",
        cost_estimate=str(policy.cost_estimate or ""),
        conditions="",
    )
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# ------------------------------------------------------------------ access


@pytest.mark.parametrize(
    "path", ["/admin/incentives/policies", NEW, "/admin/incentives/policies/feedback"]
)
def test_agents_may_not_open_the_policy_pages(client, make_user, login, path):
    existing()
    login(make_user("agent"))
    assert client.get(path).status_code == 403
    assert client.post(path, data=form()).status_code in (403, 405)


def test_agents_may_not_switch_a_policy_off(client, make_user, login):
    existing()
    login(make_user("agent"))
    response = client.post("/admin/incentives/policies/feedback/active", data={"is_active": "0"})
    assert response.status_code == 403
    assert get_policy("feedback").is_active


# ------------------------------------------------------------------ list


def test_the_list_shows_each_policy_with_its_budget_use_this_period(client, admin, make_contact):
    policy = existing(budget_amount=Decimal("50"), budget_period=BudgetPeriod.MONTH)
    existing(
        key="bonus",
        name="Bonus points",
        kind=RewardKind.LOYALTY_POINTS,
        value=Decimal("50"),
        currency=None,
    )
    grant_incentive(policy, contact=make_contact(), actor=Actor.system("test"), reason="survey")
    db.session.commit()
    html = page(client.get("/admin/incentives/policies"))
    assert "Feedback voucher" in html and "Bonus points" in html
    assert "€5.00 / €50.00" in html
    assert '<meter min="0" max="50.0" value="5.0"' in html
    assert "no budget" in html


# ------------------------------------------------------------------ create


def test_an_admin_creates_a_policy_with_the_form(client, admin):
    response = client.post(NEW, data=form())
    assert response.status_code == 302
    policy = get_policy("late-delivery")
    assert (policy.version, policy.kind, policy.value) == (1, RewardKind.PERCENTAGE, Decimal("10"))
    assert (policy.cap_count, policy.cap_window_days) == (2, 90)
    assert (policy.budget_amount, policy.budget_period) == (Decimal("300"), BudgetPeriod.MONTH)
    assert policy.minimum_order == Decimal("20") and policy.is_holder_only
    assert policy.conditions == {"triggers": ["ticket.closed"], "min_reopens": 1}
    assert admin.name in policy.created_by


def test_a_shareable_store_credit_valid_until_a_date(client, admin):
    client.post(
        NEW,
        data=form(
            key="Credit_Spring",
            kind="store_credit",
            value="15",
            currency="usd",
            valid_days="",
            valid_until="2030-04-30",
            is_holder_only="shareable",
            cap_count="",
            cap_window_days="",
            budget_amount="",
            budget_period="",
            conditions="",
        ),
    )
    policy = get_policy("credit_spring")
    assert policy.currency == "USD" and not policy.is_holder_only
    # Valid through the whole of 30 April (UTC).
    assert policy.valid_until == datetime(2030, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"value": "150"}, "value", "A percentage is above 0 and at most 100."),
        ({"value": ""}, "value", "Enter a value."),
        ({"kind": "fixed", "currency": ""}, "currency", "needs a currency"),
        ({"kind": "fixed", "currency": "EURO"}, "currency", "Three letters"),
        ({"kind": "loyalty_points", "value": "2.5"}, "value", "whole number"),
        ({"cap_window_days": ""}, "cap_window_days", "both a number of grants and a window"),
        ({"budget_period": ""}, "budget_period", "both an amount and a period"),
        ({"valid_days": "0"}, "valid_days", "At least one day."),
        ({"minimum_order": "-1"}, "minimum_order", "Must not be negative."),
        ({"conditions": "{nope"}, "conditions", "Not valid JSON"),
        (
            {"conditions": '{"moon_phase": "full"}'},
            "conditions",
            "Unknown condition(s): moon_phase.",
        ),
        ({"key": "Not a key!"}, "key", "Lowercase letters"),
    ],
)
def test_invalid_terms_are_explained_beside_the_field(client, admin, overrides, field, message):
    response = client.post(NEW, data=form(**overrides))
    assert response.status_code == 422
    html = page(response)
    assert message in field_error(html, field)
    assert f'id="{field}"' in html and 'aria-invalid="true"' in html
    assert "Please correct the marked fields." in html
    assert versions(form(**overrides)["key"].strip().lower()) == []


def test_a_taken_key_is_refused_beside_the_key(client, admin):
    existing(key="late-delivery")
    response = client.post(NEW, data=form())
    assert response.status_code == 422
    assert "exists already" in field_error(page(response), "key")


def test_free_shipping_needs_no_value(client, admin):
    response = client.post(
        NEW, data=form(key="ship", kind="free_shipping", value="", minimum_order="")
    )
    assert response.status_code == 302
    assert get_policy("ship").value == Decimal("0")


# ------------------------------------------------------------------ edit


def test_editing_saves_a_new_version_and_grants_keep_theirs(client, admin, make_contact):
    policy = existing(valid_days=30)
    earlier = grant_incentive(policy, contact=make_contact(), actor=Actor.system("t"), reason="x")
    db.session.commit()
    response = client.post(
        "/admin/incentives/policies/feedback", data=edit_form(policy, value="7.50")
    )
    assert response.status_code == 302
    first, second = versions("feedback")
    assert (first.version, first.is_current, first.value) == (1, False, Decimal("5.00"))
    assert (second.version, second.is_current, second.value) == (2, True, Decimal("7.50"))
    assert earlier.grant.policy_id == first.id and earlier.voucher.value == Decimal("5.00")
    html = page(client.get("/admin/incentives/policies/feedback"))
    assert "Saved as version 2" in html
    assert 'value="7.50"' in html and "version 1" in html


def test_saving_without_changes_makes_no_new_version(client, admin):
    policy = existing(valid_until=datetime(2031, 1, 1, 15, 30, tzinfo=UTC))
    response = client.post(
        "/admin/incentives/policies/feedback",
        data=edit_form(policy, valid_until="2031-01-01"),
        follow_redirects=True,
    )
    assert "Nothing changed" in page(response)
    assert [v.version for v in versions("feedback")] == [1]


def test_the_edit_form_shows_the_current_terms(client, admin):
    existing(valid_until=datetime(2031, 1, 2, tzinfo=UTC), conditions={"min_reopens": 1})
    html = page(client.get("/admin/incentives/policies/feedback"))
    assert 'value="2031-01-01"' in html  # valid through 1 January
    assert "&#34;min_reopens&#34;: 1" in html or "&quot;min_reopens&quot;: 1" in html
    assert 'name="key"' not in html  # the key never changes


def test_an_invalid_edit_shows_errors_and_keeps_the_version(client, admin):
    policy = existing()
    response = client.post("/admin/incentives/policies/feedback", data=edit_form(policy, value="0"))
    assert response.status_code == 422
    assert "above zero" in field_error(page(response), "value")
    assert [v.version for v in versions("feedback")] == [1]


def test_an_unknown_policy_is_not_found(client, admin):
    assert client.get("/admin/incentives/policies/nothing").status_code == 404


# ------------------------------------------------------------------ on and off


def test_switching_a_policy_off_stops_new_grants_and_on_again(client, admin, make_contact):
    existing()
    response = client.post("/admin/incentives/policies/feedback/active", data={"is_active": "0"})
    assert response.status_code == 302
    assert [(v.version, v.is_active) for v in versions("feedback")] == [(1, True), (2, False)]
    result = grant_incentive(
        "feedback", contact=make_contact(), actor=Actor.system("t"), reason="x"
    )
    assert result.status == "not_eligible"
    client.post("/admin/incentives/policies/feedback/active", data={"is_active": "1"})
    assert get_policy("feedback").is_active and get_policy("feedback").version == 3


def test_switching_to_the_state_it_has_changes_nothing(client, admin):
    existing()
    client.post("/admin/incentives/policies/feedback/active", data={"is_active": "1"})
    assert [v.version for v in versions("feedback")] == [1]


class TestWithCsrf:
    @pytest.fixture
    def app_config(self):
        return {"WTF_CSRF_ENABLED": True}

    def test_a_form_without_its_csrf_token_is_refused(self, app, client, make_user):
        user = make_user("admin")
        with client.session_transaction() as session:
            session["_user_id"] = str(user.id)
            session["_fresh"] = True
        existing()
        response = client.post(
            "/admin/incentives/policies/feedback/active", data={"is_active": "0"}
        )
        assert response.status_code == 400
        assert client.post(NEW, data=form()).status_code == 400
        assert get_policy("feedback").is_active
        html = page(client.get(NEW))
        assert 'name="csrf_token"' in html


def test_new_policy_page_renders_every_field(client, admin):
    html = page(client.get(NEW))
    for name in form():
        assert f'name="{name}"' in html, name
