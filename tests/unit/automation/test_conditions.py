"""Condition evaluation over plain facts: no database."""

from __future__ import annotations

import pytest

from automation.rules.conditions import Facts, evaluate
from automation.rules.schema import validate_rule

FACTS = {
    "ticket.channel": "email",
    "ticket.status": "solved",
    "ticket.priority": "high",
    "ticket.tags": ["vip", "Refund"],
    "ticket.team": "Billing",
    "ticket.assignee": None,
    "ticket.subject": "Where is my ORDER #123?",
    "ticket.language": "el",
    "ticket.reopen_count": 2,
    "ticket.first_response_minutes": 250.5,
    "ticket.resolution_minutes": None,
    "ticket.sla_breached": True,
    "ticket.attributes": {"plan": "gold", "seats": 12},
    "contact.order_count": 3,
    "contact.total_spend": 420.0,
    "contact.tier": "silver",
    "contact.points": 150,
    "contact.attributes": {"vip": True},
    "survey.csat_score": 2,
    "survey.nps_score": None,
    "message.body": "The parcel never arrived, I want a refund",
}


def leaf(field, operator, value=None):
    node = {"field": field, "operator": operator}
    if value is not None:
        node["value"] = value
    return node


def check(node, facts=FACTS):
    return evaluate(node, facts)[0]


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (leaf("ticket.channel", "is", "email"), True),
        (leaf("ticket.channel", "is", "EMAIL"), True),
        (leaf("ticket.channel", "is_not", "sms"), True),
        (leaf("ticket.status", "in", ["solved", "closed"]), True),
        (leaf("ticket.status", "not_in", ["solved", "closed"]), False),
        (leaf("ticket.priority", "gte", "high"), True),
        (leaf("ticket.priority", "gt", "high"), False),
        (leaf("ticket.priority", "lt", "urgent"), True),
        (leaf("ticket.tags", "contains", "refund"), True),
        (leaf("ticket.tags", "not_contains", "spam"), True),
        (leaf("ticket.tags", "includes_any", ["spam", "vip"]), True),
        (leaf("ticket.tags", "includes_all", ["spam", "vip"]), False),
        (leaf("ticket.tags", "includes_none", ["spam"]), True),
        (leaf("ticket.team", "is", "billing"), True),
        (leaf("ticket.assignee", "is_not_set"), True),
        (leaf("ticket.assignee", "is", "a@b.c"), False),
        (leaf("ticket.subject", "contains", "order #123"), True),
        (leaf("ticket.subject", "starts_with", "where"), True),
        (leaf("ticket.subject", "ends_with", "?"), True),
        (leaf("message.body", "not_contains", "refund"), False),
        (leaf("ticket.language", "in", ["el", "hu"]), True),
        (leaf("ticket.reopen_count", "gte", 2), True),
        (leaf("ticket.reopen_count", "is", 2), True),
        (leaf("ticket.first_response_minutes", "gt", 240), True),
        (leaf("ticket.first_response_minutes", "between", [0, 240]), False),
        (leaf("ticket.resolution_minutes", "lt", 60), False),
        (leaf("ticket.resolution_minutes", "is_not_set"), True),
        (leaf("ticket.sla_breached", "is", True), True),
        (leaf("ticket.sla_breached", "is", False), False),
        (leaf("survey.csat_score", "lte", 2), True),
        (leaf("survey.nps_score", "gte", 9), False),
        (leaf("contact.order_count", "gt", 2), True),
        (leaf("contact.total_spend", "between", [400, 500]), True),
        (leaf("contact.tier", "is", "silver"), True),
        (leaf("contact.points", "lt", 100), False),
        (leaf("ticket.attributes.plan", "is", "gold"), True),
        (leaf("ticket.attributes.seats", "gt", 10), True),
        (leaf("ticket.attributes.missing", "is_not_set"), True),
        (leaf("contact.attributes.vip", "is", True), True),
    ],
)
def test_leaf_operators(node, expected):
    assert check(node) is expected


def test_all_any_not_nest():
    node = {
        "all": [
            leaf("ticket.status", "is", "solved"),
            {"any": [leaf("ticket.priority", "is", "low"), leaf("ticket.tags", "contains", "vip")]},
            {"not": leaf("ticket.channel", "is", "sms")},
        ]
    }
    assert check(node) is True
    assert check({"not": node}) is False


def test_empty_conditions_match_everything():
    assert check({}) is True


def test_empty_any_matches_nothing_and_empty_all_matches():
    assert check({"any": []}) is False
    assert check({"all": []}) is True


def test_trace_lists_the_conditions_evaluated_with_the_actual_values():
    node = {"any": [leaf("ticket.priority", "is", "low"), leaf("ticket.tags", "contains", "vip")]}
    matched, trace = evaluate(node, FACTS)
    assert matched
    assert [(t["path"], t["matched"]) for t in trace] == [
        ("conditions.any[0]", False),
        ("conditions.any[1]", True),
    ]
    assert trace[0]["actual"] == "high"


def test_lazy_facts_are_computed_once_and_only_when_read():
    calls = []

    def spend():
        calls.append(1)
        return 99.0

    facts = Facts({"ticket.status": "open", "contact.total_spend": spend})
    node = {"all": [leaf("ticket.status", "is", "solved"), leaf("contact.total_spend", "gt", 50)]}
    assert evaluate(node, facts)[0] is False
    assert calls == []  # short-circuited before the expensive fact
    assert evaluate(leaf("contact.total_spend", "gt", 50), facts)[0] is True
    assert evaluate(leaf("contact.total_spend", "lt", 100), facts)[0] is True
    assert calls == [1]


def test_missing_facts_do_not_match_positive_operators():
    for node in (
        leaf("contact.tier", "is", "gold"),
        leaf("contact.points", "gt", 0),
        leaf("ticket.subject", "contains", "x"),
    ):
        assert check(node, {}) is False
    assert check(leaf("contact.tier", "is_not", "gold"), {}) is True


def test_a_validated_rule_evaluates_as_written():
    rule = validate_rule(
        {
            "name": "Apology",
            "trigger": {"type": "ticket.solved"},
            "conditions": {"all": [leaf("ticket.first_response_minutes", "gt", 240)]},
            "actions": [{"type": "set_tags", "add": ["apology"]}],
        }
    )
    assert check(rule["conditions"]) is True


def test_condition_fields_names_every_field_the_conditions_read_at_any_depth():
    from automation.rules.conditions import condition_fields

    node = {
        "any": [
            leaf("ticket.priority", "gte", "high"),
            {
                "all": [
                    leaf("contact.total_spend", "gt", 100),
                    {"not": leaf("ticket.attributes.plan", "is", "free")},
                ]
            },
        ]
    }
    assert condition_fields(node) == {
        "ticket.priority",
        "contact.total_spend",
        "ticket.attributes.plan",
    }
    assert condition_fields({}) == frozenset()


def test_an_order_comparison_with_an_unknown_bound_never_holds():
    assert not check(leaf("ticket.priority", "gt", "someday"))
    assert not check(leaf("ticket.priority", "lt", "someday"))
