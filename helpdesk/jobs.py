"""Background jobs: Huey on SQLite in-process by default, on Redis when scaled out.

The queue is chosen from the environment at import time, because Huey binds
tasks to their queue when they are declared; the web process, the embedded
consumer threads and a separate ``huey_consumer wsgi.huey`` all read the same
``REDIS_URL`` / ``RAPPORT_HUEY_PATH``.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

from flask import Flask
from huey import RedisHuey, SqliteHuey
from huey.api import Huey
from huey.consumer import Consumer

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R", covariant=True)

DEFAULT_INSTANCE = Path(__file__).resolve().parent.parent / "instance"


def _make_huey() -> Huey:
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        return RedisHuey("rapport", url=redis_url)
    path = os.environ.get("RAPPORT_HUEY_PATH") or str(
        Path(os.environ.get("RAPPORT_INSTANCE_PATH") or DEFAULT_INSTANCE) / "jobs.db"
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("rapport", filename=path)


huey: Huey = _make_huey()
_app: Flask | None = None


def bind_app(app: Flask) -> None:
    """Remember the app jobs run in; the last app created wins (one per process)."""
    global _app
    _app = app
    huey.immediate = bool(app.config.get("RAPPORT_JOBS_IMMEDIATE"))


def _job_app() -> Flask:
    global _app
    if _app is None:  # a standalone huey_consumer process
        from helpdesk import create_app

        _app = create_app()
    return _app


def _in_own_app_context(fn: F) -> Callable[..., Any]:
    """Wrap ``fn`` to run in a fresh app context (so a fresh session), removed afterwards."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        from helpdesk.extensions import db

        with _job_app().app_context():
            try:
                return fn(*args, **kwargs)
            finally:
                db.session.remove()

    return run


class Job(Protocol[P, R]):
    """A declared job (a Huey task): calling it enqueues it, ``call_local`` runs it here."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any: ...

    def call_local(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def schedule(
        self,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        eta: datetime | None = None,
        delay: float | None = None,
    ) -> Any: ...


def job(
    *, retries: int = 0, retry_delay: int = 0, priority: int | None = None
) -> Callable[[Callable[P, R]], Job[P, R]]:
    """Declare a background job that runs inside its own app context and session.

    A fresh app context means a fresh database session, even when the job runs
    immediately in the same thread (tests), so a job started from an
    after-commit listener never touches the session that just committed.
    """

    def decorate(fn: Callable[P, R]) -> Job[P, R]:
        run = _in_own_app_context(fn)
        task: Job[P, R] = huey.task(
            retries=retries,
            retry_delay=retry_delay,
            priority=priority,
            # Huey prefixes the module itself (taken from the wrapped function).
            name=fn.__name__,
        )(run)
        return task

    return decorate


def periodic(**crontab_kw: str) -> Callable[[F], F]:
    """Declare a periodic job (Huey crontab fields) that runs in an app context."""
    from huey import crontab

    def decorate(fn: F) -> F:
        run = _in_own_app_context(fn)
        return huey.periodic_task(crontab(**crontab_kw), name=fn.__name__)(run)

    return decorate


class _EmbeddedConsumer(Consumer):
    # The host process (Flask, gunicorn) owns signal handling; Huey must not take SIGINT.
    def _set_signal_handlers(self) -> None:
        pass


_consumer: Consumer | None = None
_consumer_lock = threading.Lock()


def start_embedded_worker(app: Flask) -> None:
    """Run Huey consumer threads inside this process (the one-command default)."""
    global _consumer
    if _consumer is not None or huey.immediate:
        return
    with _consumer_lock:
        if _consumer is not None:
            return
        _start_consumer(app)


def _start_consumer(app: Flask) -> None:
    global _consumer
    _consumer = _EmbeddedConsumer(
        huey,
        workers=app.config["RAPPORT_WORKER_THREADS"],
        worker_type="thread",
        periodic=True,
        check_worker_health=False,
        initial_delay=0.05,
        max_delay=1.0,
    )
    _consumer.start()
    log.info("embedded job worker started with %s threads", app.config["RAPPORT_WORKER_THREADS"])


def stop_embedded_worker() -> None:
    """Stop the embedded consumer threads (tests, shutdown)."""
    global _consumer
    if _consumer is not None:
        _consumer.stop(graceful=True)
        _consumer = None
