"""Run the enabled rules for one event: find them, evaluate, act, log the run.

Compiled rules are cached per version; versions never change after they are
written, so the cache needs no invalidation, only a bound on its size. The key
includes the version's creation time because a deleted rule's ids may be reused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.operations import audit

from .actions import HANDLERS, ActionContext, ActionSkipped
from .conditions import Check, Facts, compile_conditions
from .facts import Subject, build_facts, load_subject
from .models import Rule, RuleRun, RuleVersion
from .schema import trigger_has_ticket

log = logging.getLogger(__name__)

_CACHE_SIZE = 2048


@dataclass(frozen=True, slots=True)
class CompiledRule:
    version_id: int
    number: int
    trigger: dict[str, Any]
    check: Check
    actions: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class RuleRef:
    """An enabled rule's identity and current version, without loading its JSON."""

    rule_id: int
    version_id: int
    number: int
    created_at: datetime

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.version_id, self.rule_id, self.number, self.created_at)


class _VersionCache:
    def __init__(self) -> None:
        self._items: dict[tuple[Any, ...], CompiledRule] = {}
        self._lock = threading.Lock()

    def _store(self, key: tuple[Any, ...], compiled: CompiledRule) -> CompiledRule:
        with self._lock:
            if len(self._items) >= _CACHE_SIZE:
                self._items.pop(next(iter(self._items)))
            self._items[key] = compiled
        return compiled

    def get(self, version: RuleVersion) -> CompiledRule:
        key = (version.id, version.rule_id, version.number, version.created_at)
        hit = self._items.get(key)
        if hit is not None:
            return hit
        return self._store(key, compile_version(version.id, version.number, version.definition))

    def for_ref(self, ref: RuleRef) -> CompiledRule:
        hit = self._items.get(ref.key)
        if hit is not None:
            return hit
        definition = db.session.scalar(
            select(RuleVersion.definition).where(RuleVersion.id == ref.version_id)
        )
        return self._store(ref.key, compile_version(ref.version_id, ref.number, definition))


def compile_version(version_id: int, number: int, definition: dict[str, Any]) -> CompiledRule:
    return CompiledRule(
        version_id=version_id,
        number=number,
        trigger=definition["trigger"],
        check=compile_conditions(definition.get("conditions") or {}),
        actions=tuple(definition["actions"]),
    )


cache = _VersionCache()


def enabled_rules(trigger_type: str) -> list[RuleRef]:
    """Enabled rules for a trigger with their current versions, in order (one indexed query)."""
    rows = db.session.execute(
        select(Rule.id, RuleVersion.id, RuleVersion.number, RuleVersion.created_at)
        .join(RuleVersion, RuleVersion.id == Rule.current_version_id)
        .where(Rule.trigger_type == trigger_type, Rule.is_enabled.is_(True))
        .order_by(Rule.position, Rule.id)
    ).all()
    return [RuleRef(*row) for row in rows]


#: How long another process may act on a stale list of triggers after a rule is
#: switched on or off; this process forgets at once (``forget_enabled_triggers``).
ENABLED_TRIGGERS_TTL = 5.0
_CACHE_KEY = "rapport.enabled_rule_triggers"


def enabled_triggers() -> frozenset[str]:
    """The trigger types that have at least one enabled rule, cached briefly per app.

    Every event asks this; without the cache each one cost a transaction of its
    own (on SQLite a write lock) even when no rule exists at all.
    """
    cache = current_app.extensions.setdefault(_CACHE_KEY, {})
    now = time.monotonic()
    if cache.get("until", 0.0) < now:
        cache["triggers"] = frozenset(
            db.session.scalars(
                select(Rule.trigger_type).where(Rule.is_enabled.is_(True)).distinct()
            )
        )
        cache["until"] = now + ENABLED_TRIGGERS_TTL
    return cache["triggers"]


def forget_enabled_triggers() -> None:
    """Drop the cached trigger list now and again once this transaction commits."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    app.extensions.pop(_CACHE_KEY, None)
    # A lookup between now and the commit would cache the old state; forget it then too.
    db.session.info[_CACHE_KEY] = app


@sa_event.listens_for(Session, "after_commit")
def _forget_after_commit(session: Session) -> None:
    app = session.info.pop(_CACHE_KEY, None)
    if app is not None:
        app.extensions.pop(_CACHE_KEY, None)


def has_enabled_rules(trigger_type: str) -> bool:
    return trigger_type in enabled_triggers()


def _evaluate(compiled: CompiledRule, facts: Facts) -> list[dict[str, Any]] | None:
    """None when the rule does not match; else the conditions it evaluated, for the log."""
    if not compiled.check(facts, None):
        return None
    trace: list[dict[str, Any]] = []
    compiled.check(facts, trace)  # again, recording: only for the few rules that match
    return trace


def matching(
    refs: Iterable[RuleRef], facts: Facts
) -> list[tuple[RuleRef, CompiledRule, list[dict[str, Any]]]]:
    """The rules whose conditions hold, with the conditions they evaluated."""
    out = []
    for ref in refs:
        compiled = cache.for_ref(ref)
        trace = _evaluate(compiled, facts)
        if trace is not None:
            out.append((ref, compiled, trace))
    return out


def run_rules(
    trigger: str,
    refs: dict[str, Any],
    *,
    rules: list[RuleRef] | None = None,
    now: datetime | None = None,
) -> list[RuleRun]:
    """Evaluate the enabled rules for ``trigger`` over the records in ``refs`` and act.

    Flushes; the caller commits.
    """
    if rules is None:
        rules = enabled_rules(trigger)
    if not rules:
        return []
    subject = load_subject(trigger, refs)
    if trigger_has_ticket(trigger) and subject.ticket is None:
        return []
    if subject.ticket is not None and subject.ticket.merged_into_id is not None:
        return []
    facts = build_facts(subject, now=now)
    runs = []
    for ref in rules:
        compiled = cache.for_ref(ref)
        trace = _evaluate(compiled, facts)
        if trace is None:
            continue
        rule = db.session.get(Rule, ref.rule_id)
        if rule is None:
            continue
        runs.append(execute(rule, compiled, subject, trace, trigger))
        # Later rules see what earlier ones changed (in order, like the list says).
        facts = build_facts(subject, now=now)
    return runs


def execute(
    rule: Rule,
    compiled: CompiledRule,
    subject: Subject,
    trace: list[dict[str, Any]],
    trigger: str,
) -> RuleRun:
    """Carry out a matched rule's actions, each in its own savepoint, and log the run."""
    actor = Actor.automation(rule.id, f"rule: {rule.name}")
    ctx = ActionContext(
        rule=rule, version_number=compiled.number, subject=subject, actor=actor, trigger=trigger
    )
    results: list[dict[str, Any]] = []
    outcome = "ok"
    for index, action in enumerate(compiled.actions):
        kind = action["type"]
        params = {k: v for k, v in action.items() if k != "type"}
        entry: dict[str, Any] = {"index": index, "type": kind}
        try:
            with db.session.begin_nested():
                entry.update(HANDLERS[kind](ctx, params))
            entry["status"] = "done"
        except ActionSkipped as exc:
            entry.update(status="skipped", reason=str(exc))
        except ImportError as exc:
            outcome = "error"
            entry.update(status="error", error=f"not available: {exc.name or exc}")
        except Exception as exc:
            outcome = "error"
            log.warning("rule %s action %s (%s) failed: %s", rule.id, index, kind, exc)
            entry.update(status="error", error=str(exc)[:500] or exc.__class__.__name__)
        results.append(entry)
    ticket_id = subject.ticket.id if subject.ticket is not None else None
    contact_id = subject.contact.id if subject.contact is not None else None
    run = RuleRun(
        rule_id=rule.id,
        rule_version_id=compiled.version_id,
        version_number=compiled.number,
        trigger=trigger,
        ticket_id=ticket_id,
        contact_id=contact_id,
        subject=subject.key,
        conditions=trace,
        actions=results,
        outcome=outcome,
    )
    db.session.add(run)
    db.session.flush()
    audit.record(
        "rule.ran",
        actor=actor,
        ticket_id=ticket_id,
        contact_id=contact_id,
        rule_id=rule.id,
        rule=rule.name,
        version=compiled.number,
        trigger=trigger,
        run_id=run.id,
        outcome=outcome,
        actions=[f"{r['type']}:{r['status']}" for r in results],
    )
    return run
