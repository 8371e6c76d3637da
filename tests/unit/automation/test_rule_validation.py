"""Rule JSON is validated at save time, and the error names the field that is wrong."""

from __future__ import annotations

import copy

import pytest

from automation.rules.schema import RuleValidationError, validate_rule

GOOD = {
    "name": "Apology voucher for slow replies",
    "trigger": {"type": "ticket.solved"},
    "conditions": {
        "all": [
            {"field": "ticket.first_response_minutes", "operator": "gt", "value": 240},
            {"field": "ticket.priority", "operator": "in", "value": ["high", "urgent"]},
        ]
    },
    "actions": [
        {"type": "issue_incentive", "policy": "apology-10"},
        {"type": "reply", "template": {"en": "Sorry {{ contact.first_name }}", "el": "Συγγνώμη"}},
    ],
}


def broken(path_value):
    rule = copy.deepcopy(GOOD)
    path_value(rule)
    return rule


def error_for(rule):
    with pytest.raises(RuleValidationError) as info:
        validate_rule(rule)
    return str(info.value)


def test_a_good_rule_is_normalised():
    rule = validate_rule(GOOD)
    assert rule["trigger"] == {"type": "ticket.solved"}
    assert rule["actions"][0] == {"type": "issue_incentive", "policy": "apology-10"}
    assert rule["description"] == ""


def test_unknown_operator_names_the_condition():
    rule = broken(lambda r: r["conditions"]["all"][1].update(operator="bigger"))
    assert error_for(rule) == "conditions.all[1].operator: unknown operator 'bigger'"


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda r: r.pop("name"), "name", "needs a name"),
        (
            lambda r: r.update(trigger={"type": "ticket.exploded"}),
            "trigger.type",
            "unknown trigger",
        ),
        (
            lambda r: r["conditions"]["all"][0].update(field="ticket.colour"),
            "conditions.all[0].field",
            "unknown field",
        ),
        (
            lambda r: r["conditions"]["all"][0].update(value="soon"),
            "conditions.all[0].value",
            "number",
        ),
        (
            lambda r: r["conditions"]["all"][1].update(value=["high", "meh"]),
            "conditions.all[1].value[1]",
            "'meh'",
        ),
        (
            lambda r: r["conditions"]["all"][0].update(operator="contains"),
            "conditions.all[0].operator",
            "does not apply",
        ),
        (
            lambda r: r["conditions"]["all"].append(
                {"field": "order.total", "operator": "gt", "value": 1}
            ),
            "conditions.all[2].field",
            "not available",
        ),
        (
            lambda r: r["conditions"]["all"].append({"any": [{"not": {}}]}),
            "conditions.all[2].any[0].not",
            "needs one condition",
        ),
        (
            lambda r: r["conditions"]["all"][0].pop("value"),
            "conditions.all[0].value",
            "needs a value",
        ),
        (
            lambda r: r["conditions"]["all"][0].update(extra=1),
            "conditions.all[0].extra",
            "unknown field",
        ),
        (lambda r: r.update(actions=[]), "actions", "at least one action"),
        (
            lambda r: r["actions"].append({"type": "launch_rocket"}),
            "actions[2].type",
            "unknown action",
        ),
        (
            lambda r: r["actions"][1].update(template={"el": "Γεια"}),
            "actions[1].template.en",
            "English",
        ),
        (
            lambda r: r["actions"][1].update(template={"en": "Hi {{ contact.name"}),
            "actions[1].template.en",
            "template error",
        ),
        (
            lambda r: r["actions"][1].update(template={"en": "Hi", "fr": "Salut"}),
            "actions[1].template.fr",
            "unknown language",
        ),
        (
            lambda r: r["actions"].append({"type": "award_points", "points": -5}),
            "actions[2].points",
            "positive",
        ),
        (
            lambda r: r["actions"].append({"type": "webhook", "url": "ftp://x"}),
            "actions[2].url",
            "http",
        ),
        (
            lambda r: r["actions"].append({"type": "set_status", "status": "done"}),
            "actions[2].status",
            "'done'",
        ),
        (lambda r: r["actions"].append({"type": "assign"}), "actions[2].agent", "needs an agent"),
        (
            lambda r: r["actions"].append({"type": "send_survey", "kind": "ces"}),
            "actions[2].kind",
            "'ces'",
        ),
        (lambda r: r.update(trigger={"type": "ticket.pending_for"}), "trigger.hours", "positive"),
    ],
)
def test_each_mistake_names_its_field(mutate, field, words):
    message = error_for(broken(mutate))
    assert message.startswith(field + ":"), message
    assert words in message


def test_ticket_actions_are_refused_for_triggers_without_a_ticket():
    rule = {
        "name": "x",
        "trigger": {"type": "order.paid"},
        "actions": [
            {"type": "award_points", "points": 10},
            {"type": "reply", "template": {"en": "x"}},
        ],
    }
    assert error_for(rule).startswith("actions[1].type: 'reply' needs a ticket")


def test_time_trigger_parameters():
    rule = validate_rule(
        {
            "name": "Nudge",
            "trigger": {"type": "sla.due_within", "hours": 2},
            "actions": [{"type": "set_priority", "priority": "urgent"}],
        }
    )
    assert rule["trigger"] == {"type": "sla.due_within", "hours": 2, "target": "resolution"}


def test_a_trigger_may_be_given_as_a_string_and_tags_as_a_comma_list():
    rule = validate_rule(
        {
            "name": "t",
            "trigger": "ticket.created",
            "actions": [{"type": "set_tags", "add": "VIP, new "}],
        }
    )
    assert rule["trigger"] == {"type": "ticket.created"}
    assert rule["actions"][0] == {"type": "set_tags", "add": ["new", "vip"]}


def test_not_an_object():
    assert error_for([1, 2]) == "a rule must be a JSON object"


def test_builder_round_trip_keeps_the_rule():
    from werkzeug.datastructures import MultiDict

    from automation.rules import builder

    rule = validate_rule(GOOD)
    state = builder.state_from_definition(rule)
    form = MultiDict(
        {
            "name": state.name,
            "trigger_type": state.trigger["type"],
            "match": state.match,
            **{
                f"c-{i}-{k}": getattr(row, k)
                for i, row in enumerate(state.conditions)
                for k in ("field", "operator", "value")
            },
            **{f"a-{i}-type": row.type for i, row in enumerate(state.actions)},
            **{f"a-{i}-value": row.value for i, row in enumerate(state.actions)},
            **{
                f"a-{i}-text-{loc}": text
                for i, row in enumerate(state.actions)
                for loc, text in row.texts.items()
                if loc != "en"
            },
        }
    )
    again = validate_rule(builder.definition_from_state(builder.state_from_form(form)))
    assert again == rule


def test_builder_reads_assign_and_tag_shorthands():
    from automation.rules import builder

    state = builder.BuilderState(
        name="x",
        trigger={"type": "ticket.created"},
        actions=[
            builder.ActionRow("assign", "round_robin:Level 2"),
            builder.ActionRow("assign", "sam@example.test team:Billing"),
            builder.ActionRow("set_tags", "+vip, -new"),
            builder.ActionRow("set_attributes", "plan=gold, seats=3"),
        ],
    )
    actions = validate_rule(builder.definition_from_state(state))["actions"]
    assert actions == [
        {"type": "assign", "team": "Level 2", "round_robin": True},
        {"type": "assign", "agent": "sam@example.test", "team": "Billing"},
        {"type": "set_tags", "add": ["vip"], "remove": ["new"]},
        {"type": "set_attributes", "values": {"plan": "gold", "seats": 3}},
    ]
