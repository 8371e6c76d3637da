"""The readable rule builder: rule JSON to form rows and back.

The builder covers the common shape (one all/any group of conditions, a list
of actions with one value each, plus per-language reply texts); anything
deeper (nested groups, ``not``) is edited in the JSON view, and the builder
keeps it untouched.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from .schema import OPERATORS, TEMPLATE_LOCALES, TIME_TRIGGERS, field_spec

MAX_ROWS = 100


@dataclass
class ConditionRow:
    field: str = ""
    operator: str = ""
    value: str = ""


@dataclass
class ActionRow:
    type: str = ""
    value: str = ""
    texts: dict[str, str] = field(default_factory=dict)


@dataclass
class BuilderState:
    name: str = ""
    description: str = ""
    trigger: dict[str, Any] = field(default_factory=lambda: {"type": "ticket.created"})
    match: str = "all"
    conditions: list[ConditionRow] = field(default_factory=list)
    actions: list[ActionRow] = field(default_factory=list)
    #: Set when the conditions are too deep for rows; kept as JSON.
    advanced_conditions: str | None = None


def _value_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_value_text(v) for v in value)
    return str(value)


def _is_flat(conditions: dict[str, Any]) -> bool:
    if not conditions:
        return True
    key = next(iter(conditions))
    if key not in ("all", "any"):
        return "field" in conditions
    return all("field" in c for c in conditions[key])


def state_from_definition(definition: dict[str, Any] | None) -> BuilderState:
    """Form rows for a rule definition (or an empty rule)."""
    if not definition:
        return BuilderState()
    state = BuilderState(
        name=definition.get("name", ""),
        description=definition.get("description", ""),
        trigger=dict(definition.get("trigger") or {"type": "ticket.created"}),
    )
    conditions = definition.get("conditions") or {}
    if _is_flat(conditions):
        if "field" in conditions:
            leaves = [conditions]
        else:
            state.match = "any" if "any" in conditions else "all"
            leaves = conditions.get(state.match, [])
        state.conditions = [
            ConditionRow(c["field"], c["operator"], _value_text(c.get("value"))) for c in leaves
        ]
    else:
        state.advanced_conditions = json.dumps(conditions, indent=2, ensure_ascii=False)
    for action in definition.get("actions") or []:
        state.actions.append(_action_row(action))
    return state


def _action_row(action: dict[str, Any]) -> ActionRow:
    kind = action.get("type", "")
    row = ActionRow(type=kind)
    if kind == "assign":
        if action.get("agent"):
            row.value = action["agent"]
        elif action.get("round_robin"):
            row.value = (
                "round_robin:" + action.get("team", "") if action.get("team") else "round_robin"
            )
        elif action.get("team"):
            row.value = "team:" + action["team"]
        if action.get("agent") and action.get("team"):
            row.value = f"{action['agent']} team:{action['team']}"
    elif kind in ("set_status", "set_priority"):
        row.value = action.get(kind.split("_", 1)[1], "")
    elif kind == "send_survey":
        row.value = action.get("kind", "")
    elif kind == "set_tags":
        row.value = ", ".join(
            [f"+{t}" for t in action.get("add", [])] + [f"-{t}" for t in action.get("remove", [])]
        )
    elif kind == "set_attributes":
        row.value = ", ".join(
            f"{k}={_value_text(v)}" for k, v in (action.get("values") or {}).items()
        )
    elif kind == "reply":
        row.texts = dict(action.get("template") or {})
        row.value = row.texts.get("en", "")
    elif kind == "note":
        row.value = action.get("body", "")
    elif kind == "issue_incentive":
        row.value = action.get("policy", "")
    elif kind in ("award_points", "deduct_points"):
        row.value = _value_text(action.get("points"))
    elif kind == "webhook":
        row.value = action.get("url", "")
    return row


# ------------------------------------------------------------------ form -> JSON


def _scalar(text: str, type_: str) -> Any:
    text = text.strip()
    if type_ in ("number", "any"):
        try:
            number = float(text)
        except ValueError:
            if type_ == "any":
                lowered = text.lower()
                return {"true": True, "false": False}.get(lowered, text)
            return text  # validation names the field and says it wants a number
        return int(number) if number.is_integer() else number
    if type_ == "bool":
        return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
            text.lower(), text
        )
    return text


def _condition(row: ConditionRow) -> dict[str, Any]:
    out: dict[str, Any] = {"field": row.field, "operator": row.operator}
    arity = OPERATORS.get(row.operator, "one")
    spec = field_spec(row.field)
    type_ = spec.type if spec else "text"
    if arity == "none":
        return out
    if arity in ("list", "pair"):
        parts = [p for p in (s.strip() for s in row.value.split(",")) if p]
        out["value"] = [_scalar(p, "number" if arity == "pair" else type_) for p in parts]
    else:
        out["value"] = _scalar(row.value, type_)
    return out


def _points(text: str) -> Any:
    try:
        return int(text.strip())
    except ValueError:
        return text


def _action(row: ActionRow) -> dict[str, Any]:
    kind, value = row.type, row.value.strip()
    if kind == "assign":
        # "agent@example.com", "team:Billing", "agent@example.com team:Billing",
        # "round_robin:Billing" (the team's members in turn) or "round_robin" (the ticket's team).
        out: dict[str, Any] = {"type": kind}
        head, _, team = value.partition("team:")
        head = head.strip()
        if head.startswith("round_robin"):
            out["round_robin"] = True
            team = team or head.partition(":")[2]
        elif head:
            out["agent"] = head
        if team.strip():
            out["team"] = team.strip()
        return out
    if kind == "set_status":
        return {"type": kind, "status": value}
    if kind == "set_priority":
        return {"type": kind, "priority": value}
    if kind == "send_survey":
        return {"type": kind, "kind": value}
    if kind == "set_tags":
        tags = [t.strip() for t in value.split(",") if t.strip()]
        return {
            "type": kind,
            "add": [t.lstrip("+").strip() for t in tags if not t.startswith("-")],
            "remove": [t[1:].strip() for t in tags if t.startswith("-")],
        }
    if kind == "set_attributes":
        values: dict[str, Any] = {}
        for pair in value.split(","):
            if "=" in pair:
                key, _, raw = pair.partition("=")
                values[key.strip()] = _scalar(raw, "any")
        return {"type": kind, "values": values}
    if kind == "reply":
        texts = {k: v for k, v in row.texts.items() if v.strip()}
        if value:
            texts["en"] = value
        return {"type": kind, "template": texts}
    if kind == "note":
        return {"type": kind, "body": value}
    if kind == "issue_incentive":
        return {"type": kind, "policy": value}
    if kind in ("award_points", "deduct_points"):
        return {"type": kind, "points": _points(value)}
    if kind == "webhook":
        return {"type": kind, "url": value}
    return {"type": kind}


def _row_numbers(form: MultiDict[str, str], prefix: str) -> list[int]:
    """Row numbers in form order (rows added in the browser may number from 1000)."""
    pattern = re.compile(rf"^{prefix}-(\d{{1,5}})-(field|type)$")
    numbers = sorted({int(m.group(1)) for key in form for m in [pattern.match(key)] if m})
    return numbers[:MAX_ROWS]


def state_from_form(form: MultiDict[str, str]) -> BuilderState:
    """Read the builder's rows from a submitted form (blank rows are ignored)."""
    trigger: dict[str, Any] = {"type": form.get("trigger_type", "").strip()}
    for key in TIME_TRIGGERS.get(trigger["type"], {}):
        raw = form.get(f"trigger_{key}", "").strip()
        if raw:
            trigger[key] = _scalar(raw, "number") if key != "target" else raw
    state = BuilderState(
        name=form.get("name", ""),
        description=form.get("description", ""),
        trigger=trigger,
        match="any" if form.get("match") == "any" else "all",
        advanced_conditions=form.get("advanced_conditions") or None,
    )
    for i in _row_numbers(form, "c"):
        name = form.get(f"c-{i}-field", "").strip()
        if name:
            state.conditions.append(
                ConditionRow(
                    name, form.get(f"c-{i}-operator", "").strip(), form.get(f"c-{i}-value", "")
                )
            )
    for i in _row_numbers(form, "a"):
        kind = form.get(f"a-{i}-type", "").strip()
        if kind:
            texts = {
                loc: form.get(f"a-{i}-text-{loc}", "")
                for loc in TEMPLATE_LOCALES
                if loc != "en" and form.get(f"a-{i}-text-{loc}", "").strip()
            }
            state.actions.append(ActionRow(kind, form.get(f"a-{i}-value", ""), texts))
    return state


def definition_from_state(state: BuilderState) -> dict[str, Any]:
    """Rule JSON from builder rows (validated afterwards like any other JSON)."""
    if state.advanced_conditions:
        try:
            conditions = json.loads(state.advanced_conditions)
        except json.JSONDecodeError:
            conditions = {"all": [{"field": "", "operator": ""}]}
    elif state.conditions:
        conditions = {state.match: [_condition(row) for row in state.conditions]}
    else:
        conditions = {}
    definition: dict[str, Any] = {
        "name": state.name,
        "trigger": state.trigger,
        "conditions": conditions,
        "actions": [_action(row) for row in state.actions],
    }
    if state.description.strip():
        definition["description"] = state.description
    return definition
