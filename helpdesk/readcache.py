"""Small reads that nearly every event asks, cached per app and voided by writes.

"Is there any SLA policy?" and "which mailboxes acknowledge new tickets?" are
asked for every new ticket, and the answer almost never changes. Each asking
cost a transaction of its own (on SQLite the write lock). A :class:`ReadCache`
keeps the answer per app: a write to one of its models in this process voids
it at once, and again when that transaction ends (a read between the write
and the commit may have cached the state just replaced); other processes see
the change within ``ttl`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from flask import current_app, has_app_context
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, SessionTransaction, object_session

T = TypeVar("T")

_FORGET_AT_END = "rapport.readcache.forget"


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    generation: int
    until: float
    value: T


@dataclass(slots=True)
class _Holder(Generic[T]):
    """One app's answer, and how often this app was told to forget."""

    #: Bumped by every forget, so a read that began before it is not trusted after it.
    generation: int = 0
    entry: _Entry[T] | None = None


class ReadCache(Generic[T]):
    """``read()``'s answer, cached per app for ``ttl`` seconds; see the module text."""

    def __init__(
        self, name: str, read: Callable[[], T], *, ttl: float, models: Iterable[type] = ()
    ) -> None:
        self.key = f"rapport.readcache.{name}"
        self.ttl = ttl
        self._read = read
        for model in models:
            for name_ in ("after_insert", "after_update", "after_delete"):
                sa_event.listen(model, name_, self._written)

    def _holder(self) -> _Holder[T]:
        holder: _Holder[T] = current_app.extensions.setdefault(self.key, _Holder())
        return holder

    def get(self) -> T:
        holder = self._holder()
        entry = holder.entry
        now = time.monotonic()
        if entry is not None and entry.generation == holder.generation and entry.until > now:
            return entry.value
        generation = holder.generation
        value = self._read()
        holder.entry = _Entry(generation, now + self.ttl, value)
        return value

    def forget(self, session: Session | None = None) -> None:
        """Void this app's answer now, and again when ``session``'s transaction ends.

        Per app, like the answer: in tests a second app stands for another
        process, which must not hear of this one's writes.
        """
        if has_app_context():
            self._holder().generation += 1
        if session is not None:
            session.info.setdefault(_FORGET_AT_END, set()).add(self)

    def _written(self, _mapper: Any, _connection: Any, target: object) -> None:
        self.forget(object_session(target))


@sa_event.listens_for(Session, "after_commit")
def _forget_after_commit(session: Session) -> None:
    for cache in session.info.pop(_FORGET_AT_END, ()):
        cache.forget()


@sa_event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None:
        for cache in session.info.pop(_FORGET_AT_END, ()):
            cache.forget()
