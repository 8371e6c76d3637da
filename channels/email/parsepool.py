"""Parse a backlog of mail in worker processes while the poller ingests.

Parsing is about half the CPU a mail costs, and it needs nothing but the
bytes; ingesting needs the database and must stay in order in one
transaction. So for a big pass the poller sends each group of bodies it
fetched to a worker process and ingests the previous group meanwhile: on two
cores the two halves overlap instead of taking turns (bench/RESULTS.md).

A worker that dies or a pool that cannot start costs nothing but speed: the
poller parses that group itself (``parse_email`` never raises, so any error a
future carries is the pool's own).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from functools import partial

from channels.base import InboundMessage
from channels.email.parse import parse_email

log = logging.getLogger(__name__)


def _exit_with(poller_pid: int) -> None:
    """In a worker: exit when the poller is gone, even if it was killed outright.

    A worker holds both ends of its task pipe, so it would never see end-of-file
    and would wait for work forever after a ``kill -9`` of the poller.
    """

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(poller_pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # alive, under another user (a reused pid at worst)
                pass

    threading.Thread(target=watch, name="poller-watch", daemon=True).start()


def _parse_all(raws: list[bytes], max_attachment_bytes: int) -> list[InboundMessage]:
    return [parse_email(raw, max_attachment_bytes=max_attachment_bytes) for raw in raws]


class ParsePool:
    """``parse_email`` for lists of mail in ``processes`` worker processes."""

    def __init__(self, processes: int, *, max_attachment_bytes: int) -> None:
        # forkserver, not fork: the poller may run inside a web process with threads,
        # and a forked copy of their locks can deadlock the child. The server imports
        # the parser once, so a worker starts without importing it again.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        self._executor = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=context,
            initializer=_exit_with,
            initargs=(os.getpid(),),
        )
        self._parse = partial(_parse_all, max_attachment_bytes=max_attachment_bytes)

    def submit(self, raws: list[bytes]) -> Future[list[InboundMessage]]:
        """Start parsing ``raws``; the future holds their messages in the same order."""
        try:
            return self._executor.submit(self._parse, raws)
        except Exception as exc:  # a broken pool refuses work; the caller parses itself
            failed: Future[list[InboundMessage]] = Future()
            failed.set_exception(exc)
            return failed

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def parsed_or_none(future: Future[list[InboundMessage]], count: int) -> list[InboundMessage | None]:
    """The future's messages, or ``None`` for each when the pool failed them."""
    try:
        parsed = future.result()
    except Exception as exc:
        log.warning("parse worker failed (%s); parsing in the poller instead", exc)
        return [None] * count
    if len(parsed) != count:  # cannot happen short of a bug; never pair the wrong mail
        return [None] * count
    return list(parsed)
