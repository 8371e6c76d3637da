"""``flask ingest-eml``, ``flask import-mbox`` and ``flask email-worker``: thin wrappers."""

from __future__ import annotations

import mailbox as mbox_lib
import signal
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import click
from flask import Flask, current_app

from channels.email.inbound import MailboxRef, Outcome, mailbox_ref, process_raw
from channels.email.mailboxes import own_addresses
from channels.email.models import Mailbox
from helpdesk.extensions import db


def _mailbox_option(mailbox_id: int | None) -> MailboxRef | None:
    if mailbox_id is None:
        return None
    mailbox = db.session.get(Mailbox, mailbox_id)
    if mailbox is None:
        raise click.ClickException(f"there is no mailbox {mailbox_id}")
    return mailbox_ref(mailbox)


def feed(
    items: Iterable[tuple[str, bytes]], mailbox: MailboxRef | None, *, batch: int | None = None
) -> Counter[str]:
    """Run (source, raw) pairs through the one inbound path, committing in batches.

    Batches make big imports about twice as fast (bench/RESULTS.md). A bad mail is
    quarantined inside its own savepoint and never spoils a batch; if a commit
    itself fails, that batch is replayed one mail per commit, so each mail is
    either stored or reported as failed by name.
    """
    size = max(1, batch or int(current_app.config.get("RAPPORT_EMAIL_COMMIT_EVERY", 20)))
    own = own_addresses()
    db.session.commit()
    counts: Counter[str] = Counter()
    pending: list[tuple[str, bytes]] = []
    outcomes: list[tuple[str, Outcome]] = []

    def settle() -> None:
        try:
            db.session.commit()
        except Exception:
            db.session.rollback()
            for source, raw in pending:
                _feed_one(source, raw, mailbox, own, counts)
        else:
            for source, outcome in outcomes:
                _count(source, outcome, counts)
        pending.clear()
        outcomes.clear()

    for source, raw in items:
        try:
            outcome = process_raw(raw, mailbox=mailbox, own=own, source=source)
        except Exception:
            # The database broke mid-batch: replay what it held, one by one.
            db.session.rollback()
            for earlier_source, earlier_raw in pending:
                _feed_one(earlier_source, earlier_raw, mailbox, own, counts)
            pending.clear()
            outcomes.clear()
            _feed_one(source, raw, mailbox, own, counts)
            continue
        pending.append((source, raw))
        outcomes.append((source, outcome))
        if len(pending) >= size:
            settle()
    if pending:
        settle()
    return counts


def _feed_one(
    source: str, raw: bytes, mailbox: MailboxRef | None, own: set[str], counts: Counter[str]
) -> None:
    try:
        outcome: Outcome = process_raw(raw, mailbox=mailbox, own=own, source=source)
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        counts["failed"] += 1
        click.echo(f"{source}: failed and not stored: {exc}", err=True)
        return
    _count(source, outcome, counts)


def _count(source: str, outcome: Outcome, counts: Counter[str]) -> None:
    counts[outcome.status] += 1
    if outcome.status == "quarantined":
        click.echo(f"{source}: quarantined as item {outcome.quarantine_id}: {outcome.detail}")


def _summary(counts: Counter[str]) -> str:
    order = ("ingested", "duplicate", "ignored", "quarantined", "failed")
    total = sum(counts.values())
    parts = ", ".join(f"{counts[key]} {key}" for key in order if counts[key])
    return f"{total} mails: {parts or 'nothing to do'}"


def _eml_files(paths: tuple[str, ...]) -> Iterator[tuple[str, bytes]]:
    for name in paths:
        path = Path(name)
        yield f"file:{path}", path.read_bytes()


def _mbox_messages(path: str) -> Iterator[tuple[str, bytes]]:
    box = mbox_lib.mbox(path, create=False)
    try:
        for index, key in enumerate(box.iterkeys(), start=1):
            yield f"mbox:{path}#{index}", box.get_bytes(key)
    finally:
        box.close()


def register(app: Flask) -> None:
    """Add the email commands to ``flask``; safe to call twice."""
    if "ingest-eml" in app.cli.commands:
        return

    @app.cli.command("ingest-eml")
    @click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
    @click.option("--mailbox", "mailbox_id", type=int, help="mailbox the mail arrived in")
    def ingest_eml_command(files: tuple[str, ...], mailbox_id: int | None) -> None:
        """Ingest raw .eml files as if they had arrived by IMAP."""
        counts = feed(_eml_files(files), _mailbox_option(mailbox_id))
        click.echo(_summary(counts))

    @app.cli.command("import-mbox")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--mailbox", "mailbox_id", type=int, help="mailbox the mail arrived in")
    def import_mbox_command(file: str, mailbox_id: int | None) -> None:
        """Ingest every mail of an mbox file (an export or an archive)."""
        counts = feed(_mbox_messages(file), _mailbox_option(mailbox_id))
        click.echo(_summary(counts))

    @app.cli.command("email-worker")
    @click.option("--rescan", default=60.0, help="seconds between looks for new mailboxes")
    def email_worker_command(rescan: float) -> None:
        """Watch every active mailbox with IMAP IDLE until stopped (SIGTERM or Ctrl-C)."""
        from channels.email.imap import run_worker

        stop = threading.Event()

        def _stop(signum: int, _frame: object) -> None:
            click.echo(f"stopping on signal {signum}")
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        app_obj = current_app._get_current_object()  # type: ignore[attr-defined]
        click.echo("email worker started")
        run_worker(app_obj, stop=stop, rescan_seconds=rescan)
        click.echo("email worker stopped")
