"""The IMAP poller: mail from a mailbox folder into tickets, exactly once.

Protocol: RFC 3501 (IMAP4rev1) and RFC 2177 (IDLE); client: imapclient
(https://imapclient.readthedocs.io/).

Per mailbox we remember UIDVALIDITY and the last UID whose mail is committed.
A pass fetches UIDs above it, reads headers first (a Message-ID we already
store is skipped without downloading the body), then the bodies with
``BODY.PEEK[]`` so nothing is marked read early. Each mail is parsed and
ingested in a savepoint; ``last_uid`` moves forward in the same transaction as
the tickets it covers, so a crash or a kill at any point either keeps both or
neither. ``\\Seen`` is set only after that commit. A mail that raises goes to
quarantine and the pass goes on. When UIDVALIDITY changes the folder is read
again from the start, and Message-ID dedupe stores nothing twice.

Only one poller works on a mailbox at a time: the lease is a conditional
UPDATE on the mailbox row, renewed with every advance; a poller that lost it
cannot advance ``last_uid`` and stops.

Two ways to run it: a periodic job in the embedded worker (``poll_mailbox_job``
every ``RAPPORT_EMAIL_POLL_SECONDS``), or ``flask email-worker``, one IDLE loop
per mailbox, when scaled out. Both may run at once; the lease keeps them apart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from email.parser import BytesHeaderParser
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from channels.base import InboundMessage
from channels.email.headers import message_ids, raw_header
from channels.email.inbound import (
    MailboxRef,
    Outcome,
    attachment_limit,
    mailbox_ref,
    process_raw,
)
from channels.email.mailboxes import (
    ImapSettings,
    access_token,
    acquire_lease,
    forget_access_token,
    imap_settings,
    own_addresses,
    release_lease,
    tls_context,
)
from channels.email.models import Mailbox, Security
from channels.email.parse import CHANNEL
from channels.email.parsepool import ParsePool, parsed_or_none
from helpdesk.extensions import db
from helpdesk.jobs import job, periodic
from helpdesk.models import Message, utcnow

log = logging.getLogger(__name__)

HEADER_ITEM = b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"
BODY_ITEM = b"BODY.PEEK[]"
#: UIDs handled per round of header fetch.
BATCH = 200
#: A pass with at least this many new mails parses them in worker processes
#: (``RAPPORT_EMAIL_PARSE_PROCESSES``); a smaller one does not repay starting them.
PARSE_POOL_MIN_MAILS = 100
#: Mails per task sent to a parse worker: small enough that the first come back soon.
PARSE_SLICE = 10
#: Bodies fetched per round trip, and the bytes we let one round trip hold.
BODY_BATCH = 50
BODY_BATCH_BYTES = 32 * 1024 * 1024
MAX_BACKOFF = 300.0

#: ``checkpoint(stage, uid)`` is called with "ingested" before each commit and
#: "committed" after it; tests raise from it to simulate a crash at that point.
Checkpoint = Callable[[str, int], None]
ClientFactory = Callable[[ImapSettings], Any]


class LeaseBusy(Exception):
    """Another poller holds this mailbox's lease."""


class LeaseLost(Exception):
    """Our lease was taken over while we worked; stop without advancing."""


class MailboxGone(Exception):
    """The mailbox was deleted or deactivated."""


@dataclass
class PollResult:
    """What one pass over a mailbox did."""

    mailbox_id: int
    status: str = "done"
    seen: int = 0
    ingested: int = 0
    duplicates: int = 0
    skipped_known: int = 0
    ignored: int = 0
    quarantined: int = 0
    uidvalidity_reset: bool = False
    error: str | None = None
    quarantine_ids: list[int] = field(default_factory=list)

    def count(self, outcome: Outcome) -> None:
        if outcome.status == "ingested":
            self.ingested += 1
        elif outcome.status == "duplicate":
            self.duplicates += 1
        elif outcome.status == "ignored":
            self.ignored += 1
        elif outcome.status == "quarantined":
            self.quarantined += 1
            if outcome.quarantine_id is not None:
                self.quarantine_ids.append(outcome.quarantine_id)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_owner(kind: str = "job") -> str:
    """A lease owner name that tells people where the poller runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{kind}:{uuid.uuid4().hex[:8]}"


def connect(settings: ImapSettings, timeout: float = 60.0) -> Any:
    """Open, secure and log in an IMAP connection for a mailbox."""
    from imapclient import IMAPClient
    from imapclient.exceptions import LoginError

    # Checked before connecting: a password that must be re-entered is not worth a login attempt.
    password = None if settings.oauth_provider else settings.login_password()
    context = tls_context() if settings.security is not Security.NONE else None
    client = IMAPClient(
        settings.host,
        port=settings.port,
        ssl=settings.security is Security.SSL,
        ssl_context=context,
        timeout=timeout,
    )
    try:
        if settings.security is Security.STARTTLS:
            client.starttls(context)
        if settings.oauth_provider:
            try:
                client.oauth2_login(
                    settings.username, access_token(settings.oauth_provider, settings.username)
                )
            except LoginError:
                # Revoked early, perhaps: the next attempt fetches a new token.
                forget_access_token(settings.oauth_provider, settings.username)
                raise
        else:
            client.login(settings.username, password)
    except BaseException:
        with contextlib.suppress(Exception):  # the original error matters, not this one
            client.shutdown()
        raise
    return client


def _config(name: str, default: Any) -> Any:
    return current_app.config.get(name, default)


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _body_groups(uids: list[int], sizes: dict[int, int]) -> Iterator[list[int]]:
    group: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if group and (len(group) >= BODY_BATCH or total + size > BODY_BATCH_BYTES):
            yield group
            group, total = [], 0
        group.append(uid)
        total += size
    if group:
        yield group


def _item(data: dict[bytes, Any], prefix: bytes) -> Any:
    for key, value in data.items():
        if isinstance(key, bytes) and key.upper().startswith(prefix):
            return value
    return None


def _parse_pool(mails: int) -> ParsePool | None:
    """A pool of parse workers for a pass big enough to repay starting one."""
    processes = int(_config("RAPPORT_EMAIL_PARSE_PROCESSES", 1))
    if processes <= 0 or mails < PARSE_POOL_MIN_MAILS:
        return None
    try:
        return ParsePool(processes, max_attachment_bytes=attachment_limit())
    except Exception as exc:  # e.g. no process limit left: parse in the poller
        log.warning("could not start parse workers (%s); parsing in the poller", exc)
        return None


class _Bodies:
    """The bodies of one chunk, fetched a group per round trip, in order.

    With a parse pool, each group goes to it as soon as it is fetched, in
    slices so the first parses come back soon, and the next group is fetched
    one step early, so the workers parse ahead of the ingest instead of
    waiting for it.
    """

    def __init__(self, client: Any, groups: list[list[int]], pool: ParsePool | None) -> None:
        self._client = client
        self._groups = groups
        self._pool = pool
        self._group_of = {uid: index for index, group in enumerate(groups) for uid in group}
        self._fetched = 0
        self._raw: dict[int, bytes] = {}
        self._slices: dict[int, tuple[list[int], Future[list[InboundMessage]]]] = {}
        self._parsed: dict[int, InboundMessage | None] = {}

    def take(self, uid: int) -> tuple[bytes | None, InboundMessage | None]:
        """The uid's raw mail (None if the server lost it) and, if ready, its parse."""
        index = self._group_of[uid]
        last = min(index + (1 if self._pool else 0), len(self._groups) - 1)
        while self._fetched <= last:
            self._fetch(self._fetched)
            self._fetched += 1
        pending = self._slices.pop(uid, None)
        if pending is not None:
            uids, future = pending
            self._parsed.update(zip(uids, parsed_or_none(future, len(uids)), strict=True))
        return self._raw.pop(uid, None), self._parsed.pop(uid, None)

    def _fetch(self, index: int) -> None:
        got: dict[int, bytes] = {}
        for uid, data in self._client.fetch(self._groups[index], [BODY_ITEM]).items():
            body = _item(data, b"BODY[")
            if body is not None:
                got[uid] = bytes(body)
        self._raw.update(got)
        if self._pool is None:
            return
        uids = [uid for uid in self._groups[index] if uid in got]
        for start in range(0, len(uids), PARSE_SLICE):
            part = uids[start : start + PARSE_SLICE]
            # Keyed by its first uid: the ingest asks for that one first.
            self._slices[part[0]] = (part, self._pool.submit([got[u] for u in part]))


_header_parser = BytesHeaderParser()


def _header_message_id(header: bytes | None) -> str | None:
    """The Message-ID exactly as parse_email will read it (same helper, same rules)."""
    if not header:
        return None
    ids = message_ids(raw_header(_header_parser.parsebytes(header), "Message-ID"))
    return ids[0] if ids else None


class MailboxPoller:
    """Polls one mailbox under a lease; reuse it across passes of one connection."""

    def __init__(
        self,
        mailbox_id: int,
        *,
        owner: str | None = None,
        lease_seconds: float | None = None,
        commit_every: int | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.mailbox_id = mailbox_id
        self.owner = owner or new_owner()
        self.lease_seconds = float(lease_seconds or _config("RAPPORT_EMAIL_LEASE_SECONDS", 120))
        self.commit_every = max(1, int(commit_every or _config("RAPPORT_EMAIL_COMMIT_EVERY", 20)))
        self.checkpoint = checkpoint
        self._pool: ParsePool | None = None

    # Database steps: each ends its transaction before any network call. --------

    def claim(self) -> tuple[ImapSettings, MailboxRef, int | None, int, set[str]]:
        """Take or renew the lease and read what a pass needs; commits."""
        try:
            mailbox = db.session.get(Mailbox, self.mailbox_id)
            if mailbox is None or not mailbox.is_active:
                raise MailboxGone(f"mailbox {self.mailbox_id} is gone or inactive")
            if not acquire_lease(self.mailbox_id, self.owner, self.lease_seconds):
                raise LeaseBusy(f"mailbox {self.mailbox_id} is polled by someone else")
            db.session.refresh(mailbox)
            state = (
                imap_settings(mailbox),
                mailbox_ref(mailbox),
                mailbox.uidvalidity,
                int(mailbox.last_uid or 0),
                own_addresses(),
            )
            db.session.commit()
            return state
        except BaseException:
            db.session.rollback()
            raise

    def _guarded_update(self, **values: Any) -> None:
        """Update the mailbox row only while we hold the lease, renewing it."""
        values.setdefault("lease_until", utcnow() + _seconds(self.lease_seconds))
        changed = db.session.execute(
            update(Mailbox)
            .where(Mailbox.id == self.mailbox_id, Mailbox.lease_owner == self.owner)
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not changed:
            raise LeaseLost(f"lost the lease on mailbox {self.mailbox_id}")

    def _known_ids(self, ids: Iterable[str]) -> set[str]:
        wanted = sorted(set(ids))
        if not wanted:
            return set()
        try:
            known: set[str] = set()
            for start in range(0, len(wanted), 500):
                known.update(
                    db.session.scalars(
                        select(Message.external_id).where(
                            Message.channel == CHANNEL,
                            Message.external_id.in_(wanted[start : start + 500]),
                        )
                    )
                )
            return known
        finally:
            db.session.commit()  # a read holds the write lock on SQLite; let it go now

    # One pass ----------------------------------------------------------------------

    def poll(self, client: Any) -> PollResult:
        """Fetch and ingest everything above ``last_uid`` on an open connection."""
        result = PollResult(self.mailbox_id)
        settings, ref, stored_validity, last_uid, own = self.claim()
        selected = client.select_folder(settings.folder)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        if stored_validity != uidvalidity:
            if stored_validity is not None:
                log.warning(
                    "mailbox %s: UIDVALIDITY changed %s -> %s; re-reading the folder",
                    self.mailbox_id,
                    stored_validity,
                    uidvalidity,
                )
                result.uidvalidity_reset = True
            last_uid = 0
            self._commit_state(uidvalidity=uidvalidity, last_uid=0)

        uids = sorted(u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)
        source_prefix = f"mailbox:{self.mailbox_id}/uidvalidity:{uidvalidity}"
        self._pool = _parse_pool(len(uids))
        try:
            for chunk in _chunks(uids, BATCH):
                self._poll_chunk(client, chunk, ref, own, source_prefix, result)
        finally:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
        self._commit_state(last_polled_at=utcnow(), last_error=None)
        return result

    def _commit_state(self, **values: Any) -> None:
        try:
            self._guarded_update(**values)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise

    def _poll_chunk(
        self,
        client: Any,
        chunk: list[int],
        ref: MailboxRef,
        own: set[str],
        source_prefix: str,
        result: PollResult,
    ) -> None:
        heads = client.fetch(chunk, [HEADER_ITEM, b"RFC822.SIZE"])
        ids = {uid: _header_message_id(_item(heads[uid], b"BODY[")) for uid in heads}
        known = self._known_ids(i for i in ids.values() if i)
        # A Message-ID we store already needs no download (a re-scan after a
        # UIDVALIDITY change, or mail we sent coming back); mail without one is
        # always fetched, its id is a hash of the bytes.
        wanted = [uid for uid in chunk if uid in heads and (not ids[uid] or ids[uid] not in known)]
        sizes = {uid: int(heads[uid].get(b"RFC822.SIZE") or 0) for uid in wanted}
        bodies = _Bodies(client, list(_body_groups(wanted, sizes)), self._pool)
        pending: list[int] = []
        committed: list[int] = []
        try:
            for uid in chunk:
                result.seen += 1
                if uid not in heads:
                    pass  # expunged since the search; nothing to keep
                elif uid not in sizes:
                    result.skipped_known += 1
                else:
                    raw, parsed = bodies.take(uid)
                    if raw is not None:
                        outcome = process_raw(
                            raw,
                            mailbox=ref,
                            own=own,
                            source=f"{source_prefix}/uid:{uid}",
                            parsed=parsed,
                        )
                        result.count(outcome)
                pending.append(uid)
                if self.checkpoint:
                    self.checkpoint("ingested", uid)
                if len(pending) >= self.commit_every:
                    self._advance(pending[-1])
                    committed.extend(pending)
                    pending = []
            if pending:
                self._advance(pending[-1])
                committed.extend(pending)
        except BaseException:
            db.session.rollback()
            raise
        finally:
            if committed:
                self._mark_seen(client, committed)

    def _advance(self, uid: int) -> None:
        self._guarded_update(last_uid=uid)
        db.session.commit()
        if self.checkpoint:
            self.checkpoint("committed", uid)

    def _mark_seen(self, client: Any, uids: list[int]) -> None:
        from imapclient import SEEN

        try:
            client.add_flags(uids, [SEEN], silent=True)
        except Exception as exc:  # the tickets exist; a missing flag is cosmetic
            log.warning("mailbox %s: could not set \\Seen: %s", self.mailbox_id, exc)

    def release(self) -> None:
        try:
            release_lease(self.mailbox_id, self.owner)
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("mailbox %s: could not release the lease", self.mailbox_id)


def _seconds(value: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=value)


def record_error(mailbox_id: int, error: str) -> None:
    """Remember why the last pass failed, for the admin page; commits."""
    try:
        db.session.execute(
            update(Mailbox)
            .where(Mailbox.id == mailbox_id)
            .values(last_error=error[:2000], last_polled_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("mailbox %s: could not record the error", mailbox_id)


def describe_error(exc: BaseException) -> str:
    """An error in words, without secrets (IMAP errors never echo the password)."""
    text = str(exc).strip() or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}"


def poll_mailbox(
    mailbox_id: int,
    *,
    owner: str | None = None,
    client_factory: ClientFactory = connect,
    checkpoint: Checkpoint | None = None,
    commit_every: int | None = None,
    release: bool = True,
) -> PollResult:
    """Connect, run one pass and log out; never raises for IMAP or mail trouble."""
    poller = MailboxPoller(
        mailbox_id, owner=owner, checkpoint=checkpoint, commit_every=commit_every
    )
    client = None
    try:
        settings, *_ = poller.claim()
        client = client_factory(settings)
        return poller.poll(client)
    except LeaseBusy:
        return PollResult(mailbox_id, status="busy")
    except MailboxGone:
        return PollResult(mailbox_id, status="inactive")
    except LeaseLost as exc:
        return PollResult(mailbox_id, status="lease-lost", error=str(exc))
    except Exception as exc:
        log.warning("mailbox %s: poll failed: %s", mailbox_id, describe_error(exc))
        record_error(mailbox_id, describe_error(exc))
        return PollResult(mailbox_id, status="error", error=describe_error(exc))
    finally:
        if client is not None:
            _logout(client)
        if release:
            poller.release()


def _logout(client: Any) -> None:
    try:
        client.logout()
    except Exception:
        with contextlib.suppress(Exception):  # the connection is gone either way
            client.shutdown()


# The embedded default: a periodic job -------------------------------------------------


@job()
def poll_mailbox_job(mailbox_id: int) -> dict[str, Any]:
    """Poll one mailbox once (skipped when another poller holds it)."""
    return poll_mailbox(mailbox_id).as_dict()


@periodic(minute="*")
def schedule_mailbox_polls() -> int:
    """Every minute: queue a poll of each active mailbox every N seconds of that minute."""
    every = int(_config("RAPPORT_EMAIL_POLL_SECONDS", 30))
    if every <= 0:
        return 0
    ids = list(db.session.scalars(select(Mailbox.id).where(Mailbox.is_active.is_(True))))
    db.session.commit()
    count = 0
    for mailbox_id in ids:
        for offset in range(0, 60, every):
            poll_mailbox_job.schedule((mailbox_id,), delay=offset)
            count += 1
    return count


# Scaled out: ``flask email-worker``, one IDLE loop per mailbox ---------------------------


def idle_loop(
    mailbox_id: int,
    *,
    stop: threading.Event,
    owner: str | None = None,
    client_factory: ClientFactory = connect,
    idle_seconds: float | None = None,
    poll_seconds: float | None = None,
    on_pass: Callable[[PollResult], None] | None = None,
) -> None:
    """Keep one mailbox drained until ``stop`` is set: IDLE if offered, else poll.

    Reconnects with exponential backoff after errors; waits while another
    poller holds the lease. Runs inside an app context.
    """
    owner = owner or new_owner("worker")
    idle_seconds = float(idle_seconds or _config("RAPPORT_EMAIL_IDLE_SECONDS", 60))
    poll_seconds = float(poll_seconds or _config("RAPPORT_EMAIL_POLL_SECONDS", 30) or 30)
    poller = MailboxPoller(mailbox_id, owner=owner)
    backoff = 1.0
    try:
        while not stop.is_set():
            client = None
            try:
                settings, *_ = poller.claim()
                client = client_factory(settings)
                can_idle = client.has_capability("IDLE")
                while not stop.is_set():
                    result = poller.poll(client)
                    backoff = 1.0
                    if on_pass:
                        on_pass(result)
                    if can_idle:
                        _wait_idle(client, stop, idle_seconds)
                    else:
                        stop.wait(poll_seconds)
            except LeaseBusy:
                stop.wait(min(poll_seconds, poller.lease_seconds))
            except MailboxGone:
                log.info("mailbox %s is gone or inactive; its loop ends", mailbox_id)
                return
            except Exception as exc:
                log.warning(
                    "mailbox %s: %s; reconnecting in %.0f s",
                    mailbox_id,
                    describe_error(exc),
                    backoff,
                )
                record_error(mailbox_id, describe_error(exc))
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                if client is not None:
                    _logout(client)
    finally:
        poller.release()


def _wait_idle(client: Any, stop: threading.Event, seconds: float) -> None:
    """IDLE until the server reports something, ``seconds`` pass, or we are stopped."""
    client.idle()
    try:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline:
            if client.idle_check(timeout=1.0):
                return
    finally:
        client.idle_done()


def run_worker(app: Any, *, stop: threading.Event, rescan_seconds: float = 60.0) -> None:
    """One IDLE thread per active mailbox; starts and ends threads as mailboxes change."""
    threads: dict[int, tuple[threading.Thread, threading.Event]] = {}

    def loop(mailbox_id: int, own_stop: threading.Event) -> None:
        with app.app_context():
            try:
                idle_loop(mailbox_id, stop=own_stop)
            finally:
                db.session.remove()

    while not stop.is_set():
        with app.app_context():
            active = set(db.session.scalars(select(Mailbox.id).where(Mailbox.is_active.is_(True))))
            db.session.remove()
        for mailbox_id in active - set(threads):
            own_stop = threading.Event()
            thread = threading.Thread(
                target=loop, args=(mailbox_id, own_stop), name=f"imap-{mailbox_id}", daemon=True
            )
            thread.start()
            threads[mailbox_id] = (thread, own_stop)
            log.info("email worker: watching mailbox %s", mailbox_id)
        for mailbox_id in list(threads):
            thread, own_stop = threads[mailbox_id]
            if mailbox_id not in active:
                own_stop.set()
            if not thread.is_alive():
                del threads[mailbox_id]
        stop.wait(rescan_seconds)
    for _, own_stop in threads.values():
        own_stop.set()
    for thread, _ in threads.values():
        thread.join(timeout=10)
