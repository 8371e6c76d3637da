"""Rules: create, change (a new immutable version each time), enable, reorder, restore."""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy import func, select

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Team, User, utcnow
from helpdesk.operations import audit

from .engine import forget_enabled_triggers
from .models import Rule, RuleVersion
from .schema import RuleValidationError, validate_rule


def parse_rule_json(text: str) -> Any:
    """Parse JSON text, or raise RuleValidationError saying where it broke."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RuleValidationError(
            "json", f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None


def check_references(definition: dict[str, Any]) -> None:
    """Refuse actions naming agents or teams that do not exist."""
    for i, action in enumerate(definition["actions"]):
        if action["type"] != "assign":
            continue
        if action.get("agent"):
            user = db.session.scalar(
                select(User).where(func.lower(User.email) == action["agent"].lower())
            )
            if user is None or not user.is_active_user:
                raise RuleValidationError(
                    f"actions[{i}].agent", f"no active agent with email '{action['agent']}'"
                )
        if action.get("team"):
            team = db.session.scalar(
                select(Team).where(func.lower(Team.name) == action["team"].lower())
            )
            if team is None:
                raise RuleValidationError(f"actions[{i}].team", f"no team named '{action['team']}'")


def validate_definition(data: Any) -> dict[str, Any]:
    """Validate rule JSON and the records it names; returns the normalised definition."""
    definition = validate_rule(data)
    check_references(definition)
    return definition


def _add_version(rule: Rule, definition: dict[str, Any], actor: Actor, number: int) -> RuleVersion:
    version = RuleVersion(
        rule_id=rule.id,
        number=number,
        definition=definition,
        created_by_id=actor.id if actor.is_user else None,
        created_by_label=actor.label,
    )
    db.session.add(version)
    db.session.flush()
    rule.current_version = version
    rule.name = definition["name"]
    rule.trigger_type = definition["trigger"]["type"]
    rule.updated_at = utcnow()
    db.session.flush()
    return version


def create_rule(data: Any, *, actor: Actor, enabled: bool = False) -> Rule:
    """Validate and store a new rule (version 1), last in the order."""
    definition = validate_definition(data)
    position = (db.session.scalar(select(func.max(Rule.position))) or 0) + 1
    rule = Rule(
        name=definition["name"],
        trigger_type=definition["trigger"]["type"],
        is_enabled=enabled,
        position=position,
        webhook_secret=secrets.token_hex(32),
    )
    db.session.add(rule)
    db.session.flush()
    _add_version(rule, definition, actor, 1)
    forget_enabled_triggers()
    audit.record("rule.created", actor=actor, rule_id=rule.id, name=rule.name, enabled=enabled)
    return rule


def update_rule(rule: Rule, data: Any, *, actor: Actor) -> RuleVersion:
    """Store a changed rule as its next version; an unchanged one keeps its current version."""
    definition = validate_definition(data)
    current = rule.current_version
    if current is not None and current.definition == definition:
        return current
    number = (
        db.session.scalar(
            select(func.max(RuleVersion.number)).where(RuleVersion.rule_id == rule.id)
        )
        or 0
    ) + 1
    version = _add_version(rule, definition, actor, number)
    forget_enabled_triggers()
    audit.record("rule.updated", actor=actor, rule_id=rule.id, name=rule.name, version=number)
    return version


def restore_version(rule: Rule, version: RuleVersion, *, actor: Actor) -> RuleVersion:
    """Make an old version's content current again, as a new version."""
    if version.rule_id != rule.id:
        raise RuleValidationError("version", "that version belongs to another rule")
    return update_rule(rule, version.definition, actor=actor)


def set_rule_enabled(rule: Rule, enabled: bool, *, actor: Actor) -> Rule:
    """Switch a rule on or off."""
    if rule.is_enabled == enabled:
        return rule
    rule.is_enabled = enabled
    rule.updated_at = utcnow()
    db.session.flush()
    forget_enabled_triggers()
    audit.record("rule.enabled" if enabled else "rule.disabled", actor=actor, rule_id=rule.id)
    return rule


def move_rule(rule: Rule, offset: int, *, actor: Actor) -> Rule:
    """Move a rule up (-1) or down (+1) in the order rules run in."""
    ordered = list(db.session.scalars(select(Rule).order_by(Rule.position, Rule.id)))
    index = ordered.index(rule)
    target = index + offset
    if not 0 <= target < len(ordered):
        return rule
    ordered[index], ordered[target] = ordered[target], ordered[index]
    for position, item in enumerate(ordered, start=1):
        item.position = position
    db.session.flush()
    forget_enabled_triggers()  # the engine caches each trigger's rules in order
    audit.record("rule.moved", actor=actor, rule_id=rule.id, position=rule.position)
    return rule


def delete_rule(rule: Rule, *, actor: Actor) -> None:
    """Delete a rule with its versions and run log."""
    audit.record("rule.deleted", actor=actor, rule_id=rule.id, name=rule.name)
    rule.current_version_id = None
    db.session.flush()
    db.session.delete(rule)
    db.session.flush()
    forget_enabled_triggers()
