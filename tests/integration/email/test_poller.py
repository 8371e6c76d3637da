"""The IMAP poller against a real Dovecot: every mail exactly once, whatever happens."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from channels.email import imap
from channels.email.imap import connect, idle_loop, poll_mailbox
from channels.email.models import Mailbox
from helpdesk.extensions import db
from helpdesk.models import Message, Ticket, utcnow
from helpdesk.models.quarantine import QuarantinedItem
from tests.integration.email.conftest import make_mail

pytestmark = pytest.mark.slow


class Crash(BaseException):
    """Stands in for a crash at one point of the loop (not caught like an ordinary error)."""


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def stored_ids() -> list[str]:
    return list(db.session.scalars(select(Message.external_id).order_by(Message.id)))


def crash_at(stage: str, nth: int):
    seen = []

    def checkpoint(at: str, uid: int) -> None:
        if at == stage:
            seen.append(uid)
            if len(seen) == nth:
                raise Crash(f"{stage} #{nth} (uid {uid})")

    return checkpoint


def test_new_mail_becomes_a_ticket_and_is_marked_seen_only_then(
    mailbox, append, poll, imap, folder
):
    append(make_mail(subject="Where is my order?"))
    result = poll(mailbox)
    assert result.status == "done" and result.ingested == 1
    ticket = db.session.scalars(select(Ticket)).one()
    assert ticket.subject == "Where is my order?"
    assert ticket.inbox == f"email:{mailbox.id}"
    imap.select_folder(folder)
    assert imap.search(["SEEN"]) == imap.search(["ALL"]) != []
    db.session.refresh(mailbox)
    assert mailbox.last_uid == 1 and mailbox.uidvalidity and mailbox.last_error is None


def test_a_crash_before_commit_leaves_the_mail_unread_and_unstored(
    mailbox, append, poll, imap, folder
):
    append(make_mail())
    with pytest.raises(Crash):
        poll_mailbox(mailbox.id, checkpoint=crash_at("ingested", 1))
    db.session.expire_all()
    assert count(Message) == 0
    assert db.session.get(Mailbox, mailbox.id).last_uid == 0
    imap.select_folder(folder)
    assert imap.search(["UNSEEN"]) == imap.search(["ALL"])  # BODY.PEEK[] left it unread


@pytest.mark.parametrize(
    ("stage", "nth", "commit_every"),
    [
        ("ingested", 4, 1),  # parsed and ingested, not yet committed
        ("committed", 6, 1),  # committed, before \Seen was set
        ("ingested", 7, 3),  # in the middle of a batch of three
    ],
)
def test_crash_mid_batch_then_restart_stores_every_mail_exactly_once(
    mailbox, append, poll, stage, nth, commit_every
):
    append(*(make_mail(subject=f"Mail {i}", sender=f"c{i}@example.test") for i in range(10)))
    with pytest.raises(Crash):
        poll_mailbox(mailbox.id, checkpoint=crash_at(stage, nth), commit_every=commit_every)
    db.session.expire_all()
    stored_before = count(Message)
    assert stored_before < 10

    result = poll(mailbox, commit_every=commit_every)

    assert result.status == "done"
    assert count(Message) == 10 and count(Ticket) == 10
    assert len(set(stored_ids())) == 10
    assert sorted(db.session.scalars(select(Ticket.subject))) == sorted(
        f"Mail {i}" for i in range(10)
    )
    assert db.session.get(Mailbox, mailbox.id).last_uid == 10


def _fork_poller(app, mailbox_id: int) -> tuple[int, int]:
    """Start a poller in a forked child that reports each commit on a pipe.

    A fork (not a fresh interpreter) keeps the test fast; the child gets its own
    database connections and ends with ``os._exit``, so nothing of the parent's
    state is flushed or closed twice.
    """
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        try:
            db.engine.dispose(close=False)
            with app.app_context():

                def slow(stage: str, uid: int) -> None:
                    if stage == "committed":
                        os.write(write_end, b"c")
                        time.sleep(0.05)

                poll_mailbox(mailbox_id, checkpoint=slow, owner="doomed", commit_every=2)
            os.write(write_end, b"f")
        finally:
            os._exit(0)
    os.close(write_end)
    return pid, read_end


def _orphaned_parse_processes() -> set[int]:
    """Multiprocessing helper processes whose parent died (adopted by init)."""
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"multiprocessing.forkserver" in cmdline and ppid == 1:
            found.add(int(entry.name))
    return found


@pytest.mark.parametrize("parse_workers", [False, True], ids=["inline", "parse-workers"])
def test_sigkill_of_a_polling_process_loses_nothing_and_duplicates_nothing(
    app, mailbox, append, poll, monkeypatch, parse_workers
):
    if parse_workers:  # the forked poller inherits this and parses in a worker process
        monkeypatch.setattr(imap, "PARSE_POOL_MIN_MAILS", 1)
    orphans_before = _orphaned_parse_processes()
    append(*(make_mail(subject=f"Mail {i}", sender=f"k{i}@example.test") for i in range(20)))
    mailbox_id = mailbox.id
    db.session.commit()  # no lock held here while the other process writes
    db.session.close()
    pid, pipe = _fork_poller(app, mailbox_id)
    try:
        committed = b""
        while committed.count(b"c") < 5:
            got = os.read(pipe, 1)
            assert got and got != b"f", "the poller process ended early"
            committed += got
        os.kill(pid, signal.SIGKILL)
    finally:
        os.waitpid(pid, 0)
        os.close(pipe)
    db.session.expire_all()
    assert 10 <= count(Message) < 20  # five batches of two were committed
    # Parse workers notice that their poller died and leave (they check every second).
    deadline = time.monotonic() + 10
    while _orphaned_parse_processes() - orphans_before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _orphaned_parse_processes() - orphans_before

    # The dead process still holds the lease: nobody else may poll until it runs out.
    assert poll(mailbox_id).status == "busy"
    db.session.execute(
        update(Mailbox)
        .where(Mailbox.id == mailbox_id)
        .values(lease_until=utcnow() - timedelta(seconds=1))
    )
    result = poll(mailbox_id)

    assert result.status == "done"
    assert count(Message) == 20 and len(set(stored_ids())) == 20


def test_a_second_poller_is_refused_while_the_lease_is_held(mailbox, append, poll):
    from channels.email.mailboxes import acquire_lease

    assert acquire_lease(mailbox.id, "someone-else", 60)
    db.session.commit()
    append(make_mail())
    assert poll(mailbox).status == "busy"
    assert count(Message) == 0
    assert not acquire_lease(mailbox.id, "a-third", 60)
    assert acquire_lease(mailbox.id, "someone-else", 60)  # the holder may renew
    db.session.rollback()


def test_uidvalidity_change_rereads_the_folder_without_duplicates(
    mailbox, append, poll, imap, folder
):
    first = [make_mail(subject=f"Old {i}", sender=f"o{i}@example.test") for i in range(3)]
    append(*first)
    assert poll(mailbox).ingested == 3
    old_validity = db.session.get(Mailbox, mailbox.id).uidvalidity

    # The server lost its UID state: the folder is recreated, old mail is back, plus one new.
    imap.delete_folder(folder)
    imap.create_folder(folder)
    append(*first, make_mail(subject="New one", sender="n@example.test"))
    result = poll(mailbox)

    box = db.session.get(Mailbox, mailbox.id)
    assert box.uidvalidity != old_validity
    assert result.uidvalidity_reset
    assert result.ingested == 1 and result.skipped_known == 3
    assert count(Message) == 4 and len(set(stored_ids())) == 4
    assert box.last_uid == 4


def test_known_message_id_is_skipped_without_downloading_the_body(mailbox, append, poll):
    fetched: list[list[object]] = []

    def spying_connect(settings):
        client = connect(settings)
        original = client.fetch

        def fetch(uids, items, *args, **kwargs):
            fetched.append([*items])
            return original(uids, items, *args, **kwargs)

        client.fetch = fetch
        return client

    append(make_mail(message_id="<known@client.example>"))
    assert poll(mailbox).ingested == 1
    fetched.clear()
    db.session.execute(update(Mailbox).values(last_uid=0))  # force a second look at it
    result = poll(mailbox, client_factory=spying_connect)
    assert result.skipped_known == 1 and result.ingested == 0
    assert all(b"BODY.PEEK[]" not in items for items in fetched)
    assert count(Message) == 1


def test_mail_that_fails_to_ingest_is_quarantined_and_the_next_one_still_arrives(
    mailbox, append, poll, monkeypatch
):
    import channels.email.inbound as inbound

    real = inbound.ingest_message

    def failing(msg):
        if "explode" in (msg.subject or ""):
            raise ValueError("cannot store this mail")
        return real(msg)

    monkeypatch.setattr(inbound, "ingest_message", failing)
    append(
        make_mail(subject="please explode", sender="bad@example.test"),
        make_mail(subject="I am fine", sender="good@example.test"),
    )
    result = poll(mailbox)

    assert result.status == "done" and result.quarantined == 1 and result.ingested == 1
    assert db.session.scalars(select(Ticket.subject)).all() == ["I am fine"]
    item = db.session.scalars(select(QuarantinedItem)).one()
    assert item.channel == "email" and item.source.startswith(f"mailbox:{mailbox.id}/")
    assert item.source.endswith("/uid:1")
    assert "ValueError: cannot store this mail" in item.error_summary
    assert b"please explode" in item.raw
    assert db.session.get(Mailbox, mailbox.id).last_uid == 2

    # Fixed: reprocessing runs the same path and resolves the item.
    from helpdesk.quarantine import reprocess

    monkeypatch.setattr(inbound, "ingest_message", real)
    assert reprocess(item)
    db.session.commit()
    assert item.resolved_at is not None and "ingested as message" in item.resolution
    ticket = db.session.scalars(select(Ticket).where(Ticket.subject == "please explode")).one()
    assert ticket.inbox == f"email:{mailbox.id}"
    assert item.attempts == 2


def test_reprocess_that_still_fails_keeps_the_item_and_counts_the_attempt(app):
    from helpdesk.quarantine import quarantine, reprocess

    item = quarantine("email", "file:x.eml", b"raw", "first error")
    db.session.commit()

    def still_broken(_item):
        raise RuntimeError("still broken")

    assert not reprocess(item, still_broken)
    db.session.commit()
    assert item.resolved_at is None and item.attempts == 2
    assert "RuntimeError: still broken" in item.error_summary
    # The same bytes failing again are counted on the open item, not copied.
    again = quarantine("email", "file:x.eml", b"raw", "third error")
    assert again.id == item.id and again.attempts == 3


def test_login_failure_is_recorded_on_the_mailbox_in_words(make_mailbox, poll):
    mailbox = make_mailbox(imap_password="wrong")
    result = poll(mailbox)
    assert result.status == "error"
    box = db.session.get(Mailbox, mailbox.id)
    assert "LoginError" in box.last_error and "wrong" not in box.last_error
    assert box.lease_owner is None  # released for the next attempt


def test_idle_worker_picks_up_new_mail_within_a_second_or_two(app, mailbox, append):
    stop = threading.Event()
    passes = []
    mailbox_id = mailbox.id

    def run() -> None:
        with app.app_context():
            try:
                idle_loop(mailbox_id, stop=stop, idle_seconds=30, on_pass=passes.append)
            finally:
                db.session.remove()

    db.session.commit()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not passes and time.monotonic() < deadline:
            time.sleep(0.05)
        assert passes, "the worker never finished its first pass"
        started = time.monotonic()
        append(make_mail(subject="Live"))
        tickets = 0
        while not tickets and time.monotonic() - started < 10:
            time.sleep(0.05)
            tickets = count(Ticket)
            db.session.rollback()  # never sit on SQLite's write lock while the worker writes
        elapsed = time.monotonic() - started
        assert tickets == 1, "IDLE did not deliver the mail"
        assert elapsed < 5
    finally:
        stop.set()
        thread.join(timeout=10)
    db.session.expire_all()
    assert db.session.get(Mailbox, mailbox_id).lease_owner is None
