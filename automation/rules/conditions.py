"""Evaluate validated conditions over facts: pure functions, no database.

Facts are a mapping from dotted field names (``ticket.status``) to plain
values. Expensive facts may be given as zero-argument callables; they are
computed the first time a condition reads them, so a rule that never looks at
the contact's spend never pays for it. Conditions are compiled once into
closures (:func:`compile_conditions`) and the closures are cached per rule
version by the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import ge, gt, le, lt
from typing import Any

from .schema import DYNAMIC_PREFIXES, PRIORITIES

_MISSING = object()
_RANK = {name: i for i, name in enumerate(PRIORITIES)}


class Facts:
    """Field values for one event; callables are resolved lazily and remembered."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values: dict[str, Any] = dict(values or {})

    def get(self, field: str) -> Any:
        value = self._values.get(field, _MISSING)
        if value is _MISSING:
            value = self._dynamic(field)
        elif callable(value):
            value = value()
            self._values[field] = value
        return value

    def _dynamic(self, field: str) -> Any:
        for prefix in DYNAMIC_PREFIXES:
            if field.startswith(prefix):
                container = self.get(prefix[:-1])
                if isinstance(container, Mapping):
                    return container.get(field[len(prefix) :])
                return None
        return None

    def set(self, field: str, value: Any) -> None:
        self._values[field] = value

    def as_dict(self) -> dict[str, Any]:
        """Resolved plain values (for logs and tests)."""
        return {k: self.get(k) for k in list(self._values)}


#: A compiled condition: (facts, trace or None) -> matched.
Check = Callable[[Facts, "list[dict[str, Any]] | None"], bool]


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple | set | frozenset):
        return [_fold(v) for v in value]
    return [_fold(value)]


def _rank(value: Any) -> float | None:
    return float(_RANK[value]) if value in _RANK else None


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gt": gt,
    "gte": ge,
    "lt": lt,
    "lte": le,
}


def _make_test(field: str, operator: str, expected: Any) -> Callable[[Any], bool]:
    """Return a predicate over the actual value for one leaf condition.

    Everything that depends only on the condition is worked out here, once per
    rule version, so the predicate does the least per event.
    """
    if operator == "is_set":
        return lambda actual: actual not in (None, "", [], {})
    if operator == "is_not_set":
        return lambda actual: actual in (None, "", [], {})
    if operator in _COMPARE:
        convert = _rank if field == "ticket.priority" else _number
        bound = convert(expected)
        if bound is None:
            return lambda actual: False
        holds = _COMPARE[operator]

        def compare(actual: Any) -> bool:
            have = convert(actual)
            return have is not None and holds(have, bound)

        return compare
    if operator == "between":
        low, high = float(expected[0]), float(expected[1])

        def between(actual: Any) -> bool:
            have = _number(actual)
            return have is not None and low <= have <= high

        return between
    if operator in ("is", "is_not"):
        want = _fold(expected)
        if isinstance(expected, bool):

            def same(actual: Any) -> bool:
                return bool(actual) is expected if actual is not None else expected is False

        elif isinstance(expected, int | float):

            def same(actual: Any) -> bool:
                have = _number(actual)
                return have is not None and have == float(expected)

        else:

            def same(actual: Any) -> bool:
                return (
                    actual is not None
                    and _fold(str(actual) if not isinstance(actual, str) else actual) == want
                )

        return same if operator == "is" else (lambda actual: not same(actual))
    if operator in ("in", "not_in"):
        wanted = {_fold(v) for v in expected}

        def member(actual: Any) -> bool:
            return actual is not None and _fold(actual) in wanted

        return member if operator == "in" else (lambda actual: not member(actual))
    if operator in ("contains", "not_contains"):
        needle = _fold(expected)

        def contains(actual: Any) -> bool:
            if isinstance(actual, list | tuple | set | frozenset):
                return needle in _as_list(actual)
            if actual is None:
                return False
            return str(needle) in _fold(str(actual))

        return contains if operator == "contains" else (lambda actual: not contains(actual))
    if operator in ("starts_with", "ends_with"):
        affix = str(_fold(expected))
        if operator == "starts_with":
            return lambda actual: actual is not None and _fold(str(actual)).startswith(affix)
        return lambda actual: actual is not None and _fold(str(actual)).endswith(affix)
    if operator in ("includes_any", "includes_all", "includes_none"):
        wanted = {_fold(v) for v in expected}
        if operator == "includes_any":
            return lambda actual: bool(wanted & set(_as_list(actual)))
        if operator == "includes_all":
            return lambda actual: wanted <= set(_as_list(actual))
        return lambda actual: not (wanted & set(_as_list(actual)))
    raise ValueError(f"unknown operator {operator!r}")  # validation keeps this unreachable


def _trace_value(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_trace_value(v) for v in value]
    return str(value)


def compile_conditions(node: dict[str, Any], path: str = "conditions") -> Check:
    """Compile validated conditions into one callable."""
    if not node:
        return lambda facts, trace: True
    # Plain loops: all()/any() over a generator cost a frame per part, and this runs
    # for every rule on every event.
    if "all" in node:
        parts = [compile_conditions(c, f"{path}.all[{i}]") for i, c in enumerate(node["all"])]

        def all_of(facts: Facts, trace: list[dict[str, Any]] | None) -> bool:
            for part in parts:  # noqa: SIM110
                if not part(facts, trace):
                    return False
            return True

        return all_of
    if "any" in node:
        parts = [compile_conditions(c, f"{path}.any[{i}]") for i, c in enumerate(node["any"])]
        if not parts:
            return lambda facts, trace: False

        def any_of(facts: Facts, trace: list[dict[str, Any]] | None) -> bool:
            for part in parts:  # noqa: SIM110
                if part(facts, trace):
                    return True
            return False

        return any_of
    if "not" in node:
        inner = compile_conditions(node["not"], f"{path}.not")

        def negate(facts: Facts, trace: list[dict[str, Any]] | None) -> bool:
            return not inner(facts, trace)

        return negate
    field, operator, expected = node["field"], node["operator"], node.get("value")
    test = _make_test(field, operator, expected)

    def leaf(facts: Facts, trace: list[dict[str, Any]] | None) -> bool:
        actual = facts._values.get(field, _MISSING)  # Facts.get, inlined for plain values
        if actual is _MISSING or callable(actual):
            actual = facts.get(field)
        matched = test(actual)
        if trace is not None:
            trace.append(
                {
                    "path": path,
                    "field": field,
                    "operator": operator,
                    "value": _trace_value(expected),
                    "actual": _trace_value(actual),
                    "matched": matched,
                }
            )
        return matched

    return leaf


def condition_fields(node: dict[str, Any]) -> frozenset[str]:
    """The fields validated conditions read (so the engine fetches those with the ticket)."""
    if not node:
        return frozenset()
    for group in ("all", "any"):
        if group in node:
            return frozenset().union(*(condition_fields(c) for c in node[group]))
    if "not" in node:
        return condition_fields(node["not"])
    return frozenset([node["field"]])


def evaluate(
    conditions: dict[str, Any], facts: Facts | Mapping[str, Any]
) -> tuple[bool, list[dict[str, Any]]]:
    """Evaluate validated conditions; returns (matched, the leaves evaluated with their results)."""
    if not isinstance(facts, Facts):
        facts = Facts(facts)
    trace: list[dict[str, Any]] = []
    return compile_conditions(conditions)(facts, trace), trace
