"""Run the enabled rules for one event: find them, evaluate, act, log the run.

Compiled rules are cached per version; versions never change after they are
written, so that cache needs no invalidation, only a bound on its size. The key
includes the version's creation time because a deleted rule's ids may be reused.

Which rules are enabled, for which trigger, at which version and in which
order is cached per app for :data:`RULES_TTL` seconds (one query for all
triggers), with each trigger's list compiled once. Every rule operation
(create, change, restore, enable, disable, move, delete) drops the cache of
its own process at once and again after its commit, so that process sees the
change on its next event. Other processes (more web workers, ``huey_consumer``)
see it within :data:`RULES_TTL` seconds: the bound the list of triggers with
enabled rules always had, now for every rule change. Within that bound a rule
that matches is still read from its row before it acts, so one switched off
or deleted elsewhere never acts, and one changed elsewhere acts only if its
current version matches too; what may wait up to the bound is a new or
re-enabled rule, a new order, and a change that makes a rule start matching.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.operations import audit
from helpdesk.readcache import ReadCache

from .actions import HANDLERS, ActionContext, ActionSkipped
from .conditions import Check, Facts, compile_conditions, condition_fields
from .facts import Subject, build_facts, event_facts, load_subject
from .models import Rule, RuleRun, RuleVersion

log = logging.getLogger(__name__)

_CACHE_SIZE = 2048


@dataclass(frozen=True, slots=True)
class CompiledRule:
    version_id: int
    number: int
    trigger: dict[str, Any]
    check: Check
    actions: tuple[dict[str, Any], ...]
    #: The fields the conditions read.
    fields: frozenset[str] = frozenset()


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
        compiled = self.for_refs([ref])[0]
        if compiled is None:
            raise LookupError(f"rule version {ref.version_id} no longer exists")
        return compiled

    def for_refs(self, refs: Sequence[RuleRef]) -> list[CompiledRule | None]:
        """Compiled rules for ``refs``, in order; definitions not cached load in one query.

        None for a version deleted since ``refs`` were read.
        """
        found = {ref.key: self._items.get(ref.key) for ref in refs}
        missing = {ref.version_id: ref for ref in refs if found[ref.key] is None}
        if missing:
            rows = db.session.execute(
                select(RuleVersion.id, RuleVersion.definition).where(
                    RuleVersion.id.in_(list(missing))
                )
            ).all()
            for version_id, definition in rows:
                ref = missing[version_id]
                found[ref.key] = self._store(
                    ref.key, compile_version(version_id, ref.number, definition)
                )
        return [found[ref.key] for ref in refs]


def compile_version(version_id: int, number: int, definition: dict[str, Any]) -> CompiledRule:
    return CompiledRule(
        version_id=version_id,
        number=number,
        trigger=definition["trigger"],
        check=compile_conditions(definition.get("conditions") or {}),
        actions=tuple(definition["actions"]),
        fields=condition_fields(definition.get("conditions") or {}),
    )


cache = _VersionCache()

#: How long another process may act on a stale set of rules after a rule is
#: created, changed, switched on or off, moved or deleted; the process that made
#: the change forgets at once (``forget_enabled_triggers``).
RULES_TTL = 5.0


@dataclass(frozen=True, slots=True)
class RuleSet:
    """One trigger's enabled rules in order, compiled, and every field their conditions read."""

    rules: tuple[tuple[RuleRef, CompiledRule], ...]
    fields: frozenset[str]

    @classmethod
    def of(cls, rules: Iterable[tuple[RuleRef, CompiledRule | None]]) -> RuleSet:
        present = tuple((ref, compiled) for ref, compiled in rules if compiled is not None)
        return cls(present, frozenset().union(*(compiled.fields for _, compiled in present)))


@dataclass(slots=True)
class _Snapshot:
    """The enabled rules of every trigger, as read at one moment."""

    refs: dict[str, tuple[RuleRef, ...]]
    #: Each trigger's rules compiled, filled in as triggers are asked for.
    compiled: dict[str, RuleSet] = field(default_factory=dict)


def _read_snapshot() -> _Snapshot:
    rules, versions = Rule.__table__.c, RuleVersion.__table__.c  # columns: no ORM on this path
    rows = db.session.execute(
        select(rules.trigger_type, rules.id, versions.id, versions.number, versions.created_at)
        .join_from(Rule.__table__, RuleVersion.__table__, versions.id == rules.current_version_id)
        .where(rules.is_enabled.is_(True))
        .order_by(rules.position, rules.id)
    ).all()
    by_trigger: dict[str, list[RuleRef]] = {}
    for trigger, rule_id, version_id, number, created_at in rows:
        by_trigger.setdefault(trigger, []).append(RuleRef(rule_id, version_id, number, created_at))
    return _Snapshot(refs={trigger: tuple(refs) for trigger, refs in by_trigger.items()})


#: Rule changes forget it explicitly (``forget_enabled_triggers``): a change may
#: touch a rule, its versions or their order, so no single model's writes say it.
_enabled = ReadCache("rules.enabled", _read_snapshot, ttl=RULES_TTL)


def _snapshot() -> _Snapshot:
    return _enabled.get()


def enabled_rules(trigger_type: str) -> list[RuleRef]:
    """Enabled rules for a trigger with their current versions, in order (cached per app)."""
    return list(_snapshot().refs.get(trigger_type, ()))


def rules_for(trigger_type: str) -> RuleSet:
    """Enabled rules for a trigger, in order, each with its compiled version (cached per app)."""
    snapshot = _snapshot()
    hit = snapshot.compiled.get(trigger_type)
    if hit is None:
        refs = snapshot.refs.get(trigger_type, ())
        hit = RuleSet.of(zip(refs, cache.for_refs(refs), strict=True))
        snapshot.compiled[trigger_type] = hit
    return hit


def enabled_triggers() -> frozenset[str]:
    """The trigger types that have at least one enabled rule (cached per app).

    Every event asks this; without the cache each one cost a transaction of its
    own (on SQLite a write lock) even when no rule exists at all.
    """
    return frozenset(_snapshot().refs)


def forget_enabled_triggers() -> None:
    """Drop this process's cached rules now and again once this transaction ends."""
    _enabled.forget(db.session())


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
    rules: Iterable[tuple[RuleRef, CompiledRule]], facts: Facts
) -> list[tuple[RuleRef, CompiledRule, list[dict[str, Any]]]]:
    """The rules whose conditions hold, with the conditions they evaluated."""
    out = []
    for ref, compiled in rules:
        trace = _evaluate(compiled, facts)
        if trace is not None:
            out.append((ref, compiled, trace))
    return out


def _current(
    rule: Rule,
    ref: RuleRef,
    compiled: CompiledRule,
    trace: list[dict[str, Any]],
    facts: Facts,
) -> tuple[CompiledRule, list[dict[str, Any]]] | None:
    """The rule's current version and trace, if the rule is still on and still matches.

    The cached list may be up to ``RULES_TTL`` old when another process changed the
    rule; the row read here is not, so a matched rule is never acted on stale.
    """
    if not rule.is_enabled or rule.current_version_id is None:
        return None
    if rule.current_version_id == ref.version_id:
        return compiled, trace
    version = rule.current_version
    if version is None:
        return None
    compiled = cache.get(version)
    fresh = _evaluate(compiled, facts)
    return None if fresh is None else (compiled, fresh)


def run_rules(
    trigger: str,
    refs: dict[str, Any],
    *,
    rules: list[RuleRef] | None = None,
    now: datetime | None = None,
) -> list[RuleRun]:
    """Evaluate the enabled rules for ``trigger`` over the records in ``refs`` and act.

    Until a rule matches, facts come from a few column reads, each only when a
    condition first needs it; the records themselves load for the first match.
    Flushes; the caller commits.
    """
    if rules is None:
        ordered = rules_for(trigger)
    else:
        ordered = RuleSet.of(zip(rules, cache.for_refs(rules), strict=True))
    if not ordered.rules:
        return []
    facts = event_facts(trigger, refs, now=now, fields=ordered.fields)
    if facts is None:  # the ticket is gone or merged away
        return []
    subject: Subject | None = None
    runs = []
    for ref, compiled in ordered.rules:
        trace = _evaluate(compiled, facts)
        if trace is None:
            continue
        rule = db.session.get(Rule, ref.rule_id)
        if rule is None:
            continue
        current = _current(rule, ref, compiled, trace, facts)
        if current is None:
            continue
        compiled, trace = current
        if subject is None:
            subject = load_subject(trigger, refs)
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
