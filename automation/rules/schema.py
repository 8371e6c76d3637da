"""The rule language: triggers, fields, operators and actions, and validation of rule JSON.

A rule is plain JSON::

    {"name": "Apology for slow replies",
     "trigger": {"type": "ticket.solved"},
     "conditions": {"all": [{"field": "ticket.first_response_minutes",
                             "operator": "gt", "value": 240}]},
     "actions": [{"type": "issue_incentive", "policy": "apology-10"}]}

:func:`validate_rule` checks it and returns a normalised copy, or raises
:class:`RuleValidationError` naming the field that is wrong
(``conditions.all[1].operator: unknown operator 'bigger'``). Nothing here
touches the database, so it is unit-tested on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from jinja2 import TemplateSyntaxError

# ------------------------------------------------------------------ triggers

#: Triggers fired by events, with the fact scopes each one provides.
EVENT_TRIGGERS: dict[str, frozenset[str]] = {
    "ticket.created": frozenset({"ticket", "contact", "event"}),
    "message.received": frozenset({"ticket", "contact", "message", "event"}),
    "ticket.updated": frozenset({"ticket", "contact", "event"}),
    "ticket.solved": frozenset({"ticket", "contact", "event"}),
    "ticket.closed": frozenset({"ticket", "contact", "event"}),
    "ticket.reopened": frozenset({"ticket", "contact", "event"}),
    "survey.answered": frozenset({"ticket", "contact", "survey", "event"}),
    "sla.first_response_breached": frozenset({"ticket", "contact", "event"}),
    "sla.resolution_breached": frozenset({"ticket", "contact", "event"}),
    "order.created": frozenset({"order", "contact", "event"}),
    "order.paid": frozenset({"order", "contact", "event"}),
    "order.refunded": frozenset({"order", "contact", "event"}),
    "contact.created": frozenset({"contact", "event"}),
    "activity.reported": frozenset({"activity", "contact", "event"}),
}

#: Time-based triggers, checked by a periodic job, with their parameters.
TIME_TRIGGERS: dict[str, dict[str, Any]] = {
    "ticket.pending_for": {"hours": "number"},
    "ticket.no_customer_reply": {"days": "number"},
    "sla.due_within": {"hours": "number", "target": ("resolution", "first_response")},
}
_TIME_SCOPES = frozenset({"ticket", "contact", "event"})

TRIGGER_LABELS: dict[str, str] = {
    "ticket.created": "Ticket created",
    "message.received": "Customer message received",
    "ticket.updated": "Ticket updated",
    "ticket.solved": "Ticket solved",
    "ticket.closed": "Ticket closed",
    "ticket.reopened": "Ticket reopened",
    "survey.answered": "Survey answered (CSAT/NPS)",
    "sla.first_response_breached": "SLA first response breached",
    "sla.resolution_breached": "SLA resolution breached",
    "order.created": "Order created",
    "order.paid": "Order paid",
    "order.refunded": "Order refunded",
    "contact.created": "Contact created",
    "activity.reported": "Activity reported by a shop",
    "ticket.pending_for": "Ticket pending for N hours",
    "ticket.no_customer_reply": "No customer reply for N days",
    "sla.due_within": "SLA due within N hours",
}


def trigger_scopes(trigger_type: str) -> frozenset[str]:
    if trigger_type in EVENT_TRIGGERS:
        return EVENT_TRIGGERS[trigger_type]
    return _TIME_SCOPES


def trigger_has_ticket(trigger_type: str) -> bool:
    return "ticket" in trigger_scopes(trigger_type)


# ------------------------------------------------------------------ fields

STATUSES = ("new", "open", "pending", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
ORDER_STATUSES = (
    "pending",
    "paid",
    "fulfilled",
    "partially_refunded",
    "refunded",
    "cancelled",
)
SURVEY_KINDS = ("csat", "nps")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: str  # text, choice, ordered, number, bool, list, any
    label: str
    choices: tuple[str, ...] = ()

    @property
    def scope(self) -> str:
        return self.name.split(".", 1)[0]


def _f(name: str, type_: str, label: str, choices: tuple[str, ...] = ()) -> FieldSpec:
    return FieldSpec(name, type_, label, choices)


FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        _f("ticket.channel", "text", "Channel"),
        _f("ticket.status", "choice", "Status", STATUSES),
        _f("ticket.priority", "ordered", "Priority", PRIORITIES),
        _f("ticket.tags", "list", "Tags"),
        _f("ticket.team", "text", "Team (name)"),
        _f("ticket.assignee", "text", "Assignee (email)"),
        _f("ticket.subject", "text", "Subject"),
        _f("ticket.language", "text", "Language"),
        _f("ticket.reopen_count", "number", "Times reopened"),
        _f("ticket.age_hours", "number", "Age in hours"),
        _f("ticket.first_response_minutes", "number", "Minutes to first response"),
        _f("ticket.resolution_minutes", "number", "Minutes to resolution"),
        _f("ticket.sla_breached", "bool", "SLA breached"),
        _f("ticket.csat_score", "number", "Latest CSAT score on the ticket"),
        _f("ticket.nps_score", "number", "Latest NPS score on the ticket"),
        _f("message.body", "text", "Message body"),
        _f("message.subject", "text", "Message subject"),
        _f("message.channel", "text", "Message channel"),
        _f("message.is_auto_reply", "bool", "Message is an auto-reply"),
        _f("contact.email", "text", "Contact email"),
        _f("contact.name", "text", "Contact name"),
        _f("contact.language", "text", "Contact language"),
        _f("contact.order_count", "number", "Contact's paid orders"),
        _f("contact.total_spend", "number", "Contact's total spend"),
        _f("contact.tier", "text", "Loyalty tier"),
        _f("contact.points", "number", "Loyalty points"),
        _f("contact.ticket_count", "number", "Contact's tickets"),
        _f("order.status", "choice", "Order status", ORDER_STATUSES),
        _f("order.total", "number", "Order total"),
        _f("order.currency", "text", "Order currency"),
        _f("survey.kind", "choice", "Survey kind", SURVEY_KINDS),
        _f("survey.score", "number", "Survey score"),
        _f("survey.csat_score", "number", "CSAT score (1-5)"),
        _f("survey.nps_score", "number", "NPS score (0-10)"),
        _f("survey.comment", "text", "Survey comment"),
        _f("activity.type", "text", "Activity type"),
        _f("event.changed_fields", "list", "Changed fields (ticket.updated)"),
        _f("event.actor_kind", "choice", "Who caused it", ("user", "contact", "api", "system")),
    )
}

#: Open-ended fields: ``ticket.attributes.<key>``, ``contact.attributes.<key>``,
#: ``activity.data.<key>``.
DYNAMIC_PREFIXES = ("ticket.attributes.", "contact.attributes.", "activity.data.")
_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def field_spec(name: str) -> FieldSpec | None:
    spec = FIELDS.get(name)
    if spec is not None:
        return spec
    for prefix in DYNAMIC_PREFIXES:
        if name.startswith(prefix) and _KEY.match(name[len(prefix) :]):
            return FieldSpec(name, "any", name)
    return None


# ------------------------------------------------------------------ operators

#: Operator name -> kind of value it takes: none, one, list, pair.
OPERATORS: dict[str, str] = {
    "is": "one",
    "is_not": "one",
    "in": "list",
    "not_in": "list",
    "contains": "one",
    "not_contains": "one",
    "starts_with": "one",
    "ends_with": "one",
    "gt": "one",
    "gte": "one",
    "lt": "one",
    "lte": "one",
    "between": "pair",
    "is_set": "none",
    "is_not_set": "none",
    "includes_any": "list",
    "includes_all": "list",
    "includes_none": "list",
}

OPERATORS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "text": (
        "is",
        "is_not",
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
        "in",
        "not_in",
        "is_set",
        "is_not_set",
    ),
    "choice": ("is", "is_not", "in", "not_in", "is_set", "is_not_set"),
    "ordered": ("is", "is_not", "in", "not_in", "gt", "gte", "lt", "lte"),
    "number": ("is", "is_not", "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set"),
    "bool": ("is", "is_not"),
    "list": (
        "contains",
        "not_contains",
        "includes_any",
        "includes_all",
        "includes_none",
        "is_set",
        "is_not_set",
    ),
    "any": tuple(OPERATORS),
}

# ------------------------------------------------------------------ actions

#: Action type -> (parameters, needs a ticket).
ACTIONS: dict[str, tuple[tuple[str, ...], bool]] = {
    "assign": (("agent", "team", "round_robin"), True),
    "set_status": (("status",), True),
    "set_priority": (("priority",), True),
    "set_tags": (("add", "remove"), True),
    "set_attributes": (("values",), True),
    "reply": (("template", "status_after"), True),
    "note": (("body",), True),
    "send_survey": (("kind",), True),
    "issue_incentive": (("policy",), False),
    "award_points": (("points",), False),
    "deduct_points": (("points",), False),
    "webhook": (("url",), False),
}

ACTION_LABELS: dict[str, str] = {
    "assign": "Assign",
    "set_status": "Set status",
    "set_priority": "Set priority",
    "set_tags": "Add or remove tags",
    "set_attributes": "Set attributes",
    "reply": "Reply from a template",
    "note": "Add an internal note",
    "send_survey": "Send a survey",
    "issue_incentive": "Issue an incentive",
    "award_points": "Award points",
    "deduct_points": "Deduct points",
    "webhook": "Call a webhook",
}

TEMPLATE_LOCALES = ("en", "el", "hu", "ar")
MAX_CONDITIONS = 100
MAX_DEPTH = 6
MAX_ACTIONS = 20

# ------------------------------------------------------------------ validation


class RuleValidationError(ValueError):
    """Rule JSON that cannot be saved; ``field`` is the dotted path of the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def _fail(path: str, message: str) -> RuleValidationError:
    return RuleValidationError(path, message)


def _check_keys(obj: dict[str, Any], path: str, allowed: tuple[str, ...]) -> None:
    for key in obj:
        if key not in allowed:
            where = f"{path}.{key}" if path else key
            raise _fail(where, f"unknown field '{key}'")


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_rule(data: Any) -> dict[str, Any]:
    """Return a normalised copy of rule JSON, or raise RuleValidationError naming the field."""
    if not isinstance(data, dict):
        raise _fail("", "a rule must be a JSON object")
    _check_keys(data, "", ("name", "description", "trigger", "conditions", "actions"))
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _fail("name", "a rule needs a name")
    if len(name) > 200:
        raise _fail("name", "the name is longer than 200 characters")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _fail("description", "must be a string")
    trigger = _validate_trigger(data.get("trigger"))
    scopes = trigger_scopes(trigger["type"])
    counter = [0]
    conditions = _validate_condition(data.get("conditions") or {}, "conditions", scopes, 0, counter)
    actions = _validate_actions(data.get("actions"), trigger["type"])
    return {
        "name": name.strip(),
        "description": description.strip(),
        "trigger": trigger,
        "conditions": conditions,
        "actions": actions,
    }


def _validate_trigger(trigger: Any) -> dict[str, Any]:
    if isinstance(trigger, str):
        trigger = {"type": trigger}
    if not isinstance(trigger, dict):
        raise _fail("trigger", "must be an object with a 'type'")
    kind = trigger.get("type")
    if not isinstance(kind, str) or not kind:
        raise _fail("trigger.type", "a trigger type is required")
    if kind in EVENT_TRIGGERS:
        _check_keys(trigger, "trigger", ("type",))
        return {"type": kind}
    if kind not in TIME_TRIGGERS:
        raise _fail("trigger.type", f"unknown trigger '{kind}'")
    params = TIME_TRIGGERS[kind]
    _check_keys(trigger, "trigger", ("type", *params))
    out: dict[str, Any] = {"type": kind}
    for key, expected in params.items():
        value = trigger.get(key)
        if expected == "number":
            if not _is_number(value) or value <= 0:
                raise _fail(f"trigger.{key}", f"'{key}' must be a positive number")
            if value > 24 * 366:
                raise _fail(f"trigger.{key}", f"'{key}' is too large")
            out[key] = value
        else:
            value = value or expected[0]
            if value not in expected:
                raise _fail(f"trigger.{key}", f"'{key}' must be one of: {', '.join(expected)}")
            out[key] = value
    return out


def _validate_condition(
    node: Any, path: str, scopes: frozenset[str], depth: int, counter: list[int]
) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise _fail(path, "a condition must be an object")
    if depth > MAX_DEPTH:
        raise _fail(path, f"conditions are nested deeper than {MAX_DEPTH} levels")
    if not node:
        return {}
    groups = [k for k in ("all", "any", "not") if k in node]
    if groups:
        if len(node) != 1:
            raise _fail(path, "a group has exactly one of 'all', 'any' or 'not'")
        key = groups[0]
        if key == "not":
            inner = node["not"]
            if not isinstance(inner, dict) or not inner:
                raise _fail(f"{path}.not", "'not' needs one condition")
            return {"not": _validate_condition(inner, f"{path}.not", scopes, depth + 1, counter)}
        items = node[key]
        if not isinstance(items, list):
            raise _fail(f"{path}.{key}", f"'{key}' must be a list of conditions")
        return {
            key: [
                _validate_condition(item, f"{path}.{key}[{i}]", scopes, depth + 1, counter)
                for i, item in enumerate(items)
            ]
        }
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise _fail(path, f"a rule has at most {MAX_CONDITIONS} conditions")
    _check_keys(node, path, ("field", "operator", "value"))
    return _validate_leaf(node, path, scopes)


def _validate_leaf(node: dict[str, Any], path: str, scopes: frozenset[str]) -> dict[str, Any]:
    field = node.get("field")
    if not isinstance(field, str) or not field:
        raise _fail(f"{path}.field", "a field is required")
    spec = field_spec(field)
    if spec is None:
        raise _fail(f"{path}.field", f"unknown field '{field}'")
    if spec.scope not in scopes:
        raise _fail(f"{path}.field", f"'{field}' is not available for this trigger")
    operator = node.get("operator")
    if operator not in OPERATORS:
        raise _fail(f"{path}.operator", f"unknown operator '{operator}'")
    if operator not in OPERATORS_BY_TYPE[spec.type]:
        allowed = ", ".join(OPERATORS_BY_TYPE[spec.type])
        raise _fail(
            f"{path}.operator", f"operator '{operator}' does not apply to '{field}' (use {allowed})"
        )
    arity = OPERATORS[operator]
    out: dict[str, Any] = {"field": field, "operator": operator}
    if arity == "none":
        return out
    if "value" not in node:
        raise _fail(f"{path}.value", f"operator '{operator}' needs a value")
    value = node["value"]
    vpath = f"{path}.value"
    if arity == "list":
        if not isinstance(value, list) or not value:
            raise _fail(vpath, f"operator '{operator}' needs a non-empty list")
        out["value"] = [
            _check_scalar(spec, item, operator, f"{vpath}[{i}]") for i, item in enumerate(value)
        ]
    elif arity == "pair":
        if not (isinstance(value, list) and len(value) == 2 and all(map(_is_number, value))):
            raise _fail(vpath, "'between' needs two numbers [low, high]")
        if value[0] > value[1]:
            raise _fail(vpath, "the low end is above the high end")
        out["value"] = list(value)
    else:
        out["value"] = _check_scalar(spec, value, operator, vpath)
    return out


def _check_scalar(spec: FieldSpec, value: Any, operator: str, path: str) -> Any:
    if spec.type == "number" or (spec.type == "any" and operator in ("gt", "gte", "lt", "lte")):
        if not _is_number(value):
            raise _fail(path, f"'{spec.name}' compares with a number, not {value!r}")
        return value
    if spec.type == "bool":
        if not isinstance(value, bool):
            raise _fail(path, f"'{spec.name}' is true or false, not {value!r}")
        return value
    if spec.type in ("choice", "ordered"):
        if value not in spec.choices:
            raise _fail(
                path, f"{value!r} is not a valid {spec.label.lower()} ({', '.join(spec.choices)})"
            )
        return value
    if spec.type == "any":
        if not (isinstance(value, str | bool) or _is_number(value)):
            raise _fail(path, "must be a string, a number or true/false")
        return value
    if not isinstance(value, str):
        raise _fail(path, f"'{spec.name}' compares with text, not {value!r}")
    if len(value) > 1000:
        raise _fail(path, "the value is longer than 1000 characters")
    return value


def _validate_actions(actions: Any, trigger_type: str) -> list[dict[str, Any]]:
    if not isinstance(actions, list) or not actions:
        raise _fail("actions", "a rule needs at least one action")
    if len(actions) > MAX_ACTIONS:
        raise _fail("actions", f"a rule has at most {MAX_ACTIONS} actions")
    return [_validate_action(a, f"actions[{i}]", trigger_type) for i, a in enumerate(actions)]


def _validate_action(action: Any, path: str, trigger_type: str) -> dict[str, Any]:
    if not isinstance(action, dict):
        raise _fail(path, "an action must be an object")
    kind = action.get("type")
    if kind not in ACTIONS:
        raise _fail(f"{path}.type", f"unknown action '{kind}'")
    params, needs_ticket = ACTIONS[kind]
    _check_keys(action, path, ("type", *params))
    if needs_ticket and not trigger_has_ticket(trigger_type):
        raise _fail(f"{path}.type", f"'{kind}' needs a ticket; trigger '{trigger_type}' has none")
    out: dict[str, Any] = {"type": kind}
    check = _ACTION_CHECKS[kind]
    out.update(check(action, path))
    return out


def _nonempty_str(action: dict[str, Any], key: str, path: str, limit: int = 200) -> str:
    value = action.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{path}.{key}", f"'{key}' is required")
    if len(value) > limit:
        raise _fail(f"{path}.{key}", f"'{key}' is longer than {limit} characters")
    return value.strip()


def _check_assign(action: dict[str, Any], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("agent", "team"):
        if action.get(key) is not None:
            out[key] = _nonempty_str(action, key, path)
    round_robin = action.get("round_robin", False)
    if not isinstance(round_robin, bool):
        raise _fail(f"{path}.round_robin", "must be true or false")
    if round_robin and "agent" in out:
        raise _fail(f"{path}.round_robin", "choose an agent or round robin, not both")
    if round_robin:
        out["round_robin"] = True
    if not out:
        raise _fail(f"{path}.agent", "assign needs an agent, a team or round_robin")
    return out


def _choice(action: dict[str, Any], key: str, path: str, choices: tuple[str, ...]) -> Any:
    value = action.get(key)
    if value not in choices:
        raise _fail(f"{path}.{key}", f"{value!r} is not one of: {', '.join(choices)}")
    return value


def _check_tags(action: dict[str, Any], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("add", "remove"):
        value = action.get(key, [])
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise _fail(f"{path}.{key}", f"'{key}' must be a list of tag names")
        if value:
            out[key] = sorted({v.strip().lower()[:64] for v in value})
    if not out:
        raise _fail(f"{path}.add", "give tags to add or to remove")
    return out


def _check_attributes(action: dict[str, Any], path: str) -> dict[str, Any]:
    values = action.get("values")
    if not isinstance(values, dict) or not values:
        raise _fail(f"{path}.values", "'values' must be an object of attribute values")
    for key, value in values.items():
        if not _KEY.match(str(key)):
            raise _fail(f"{path}.values.{key}", "not a valid attribute key")
        if not (value is None or isinstance(value, str | bool) or _is_number(value)):
            raise _fail(f"{path}.values.{key}", "must be text, a number, true/false or null")
    return {"values": dict(values)}


def check_template(source: str, path: str) -> None:
    """Refuse a template the sandbox cannot compile."""
    from .templating import compile_template

    try:
        compile_template(source)
    except TemplateSyntaxError as exc:
        raise _fail(path, f"template error on line {exc.lineno}: {exc.message}") from None


def _check_reply(action: dict[str, Any], path: str) -> dict[str, Any]:
    template = action.get("template")
    if isinstance(template, str):
        template = {"en": template}
    if not isinstance(template, dict) or not template:
        raise _fail(f"{path}.template", 'give the reply text per language, e.g. {"en": "…"}')
    out: dict[str, str] = {}
    for locale, text in template.items():
        if locale not in TEMPLATE_LOCALES:
            raise _fail(f"{path}.template.{locale}", f"unknown language '{locale}'")
        if not isinstance(text, str):
            raise _fail(f"{path}.template.{locale}", "must be text")
        if text.strip():
            check_template(text, f"{path}.template.{locale}")
            out[locale] = text
    if "en" not in out:
        raise _fail(f"{path}.template.en", "an English text is required as the fallback")
    result: dict[str, Any] = {"template": out}
    if action.get("status_after") is not None:
        result["status_after"] = _choice(action, "status_after", path, STATUSES)
    return result


def _check_note(action: dict[str, Any], path: str) -> dict[str, Any]:
    body = _nonempty_str(action, "body", path, limit=10_000)
    check_template(body, f"{path}.body")
    return {"body": body}


def _check_points(action: dict[str, Any], path: str) -> dict[str, Any]:
    points = action.get("points")
    if isinstance(points, bool) or not isinstance(points, int) or points <= 0:
        raise _fail(f"{path}.points", "'points' must be a positive whole number")
    if points > 1_000_000:
        raise _fail(f"{path}.points", "'points' is too large")
    return {"points": points}


def _check_webhook(action: dict[str, Any], path: str) -> dict[str, Any]:
    url = _nonempty_str(action, "url", path, limit=2000)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _fail(f"{path}.url", f"'{url}' is not an http(s) URL")
    return {"url": url}


_ACTION_CHECKS: dict[str, Any] = {
    "assign": _check_assign,
    "set_status": lambda a, p: {"status": _choice(a, "status", p, STATUSES)},
    "set_priority": lambda a, p: {"priority": _choice(a, "priority", p, PRIORITIES)},
    "set_tags": _check_tags,
    "set_attributes": _check_attributes,
    "reply": _check_reply,
    "note": _check_note,
    "send_survey": lambda a, p: {"kind": _choice(a, "kind", p, SURVEY_KINDS)},
    "issue_incentive": lambda a, p: {"policy": _nonempty_str(a, "policy", p, limit=120)},
    "award_points": _check_points,
    "deduct_points": _check_points,
    "webhook": _check_webhook,
}
