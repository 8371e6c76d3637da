"""``flask ingest-eml`` and ``flask import-mbox``: the same inbound path, from files."""

from __future__ import annotations

import mailbox as mbox_lib

from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import Message, Ticket
from helpdesk.models.quarantine import QuarantinedItem
from tests.integration.email.conftest import make_mail


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_ingest_eml_ingests_files_and_skips_duplicates(runner, tmp_path):
    first = tmp_path / "a.eml"
    first.write_bytes(make_mail(subject="From a file", message_id="<file-1@client.example>"))
    result = runner.invoke(args=["ingest-eml", str(first), str(first)])
    assert result.exit_code == 0, result.output
    assert "2 mails: 1 ingested, 1 duplicate" in result.output
    assert count(Ticket) == 1


def test_ingest_eml_routes_to_the_mailbox_named_in_the_recipients(runner, tmp_path, app):
    from channels.email.mailboxes import create_mailbox
    from helpdesk.actors import Actor

    mailbox = create_mailbox(actor=Actor.system("test"), name="Care", address="care@example.test")
    db.session.commit()
    path = tmp_path / "b.eml"
    path.write_bytes(make_mail(to="Care <Care@Example.test>"))
    assert runner.invoke(args=["ingest-eml", str(path)]).exit_code == 0
    ticket = db.session.scalars(select(Ticket)).one()
    assert ticket.inbox == f"email:{mailbox.id}"


def test_import_mbox_quarantines_failures_and_prints_a_summary(runner, tmp_path, monkeypatch):
    import channels.email.inbound as inbound

    real = inbound.ingest_message

    def failing(msg):
        if msg.subject == "Broken":
            raise RuntimeError("no good")
        return real(msg)

    monkeypatch.setattr(inbound, "ingest_message", failing)
    path = tmp_path / "archive.mbox"
    box = mbox_lib.mbox(str(path))
    for subject in ("One", "Broken", "Three"):
        box.add(make_mail(subject=subject, sender=f"{subject.lower()}@example.test"))
    box.close()

    result = runner.invoke(args=["import-mbox", str(path)])

    assert result.exit_code == 0, result.output
    assert "3 mails: 2 ingested, 1 quarantined" in result.output
    assert count(Message) == 2
    item = db.session.scalars(select(QuarantinedItem)).one()
    assert item.source == f"mbox:{path}#2" and "RuntimeError: no good" in item.error


def test_a_batch_whose_commit_fails_is_replayed_mail_by_mail_so_nothing_is_lost(
    app, monkeypatch, capsys
):
    from channels.email.cli import feed

    real_commit = db.session.commit
    calls = {"n": 0}

    def flaky_commit():
        calls["n"] += 1
        if calls["n"] == 2:  # the first batch's commit (the first call opens the feed)
            raise RuntimeError("disk I/O error")
        real_commit()

    monkeypatch.setattr(db.session, "commit", flaky_commit)
    mails = [
        (f"test:{i}", make_mail(subject=f"Mail {i}", sender=f"m{i}@example.test")) for i in range(5)
    ]

    counts = feed(mails, None, batch=2)

    assert counts == {"ingested": 5}
    assert calls["n"] > 4  # the failed batch of two went again, one commit each
    monkeypatch.undo()
    db.session.expire_all()
    assert count(Message) == 5 and count(Ticket) == 5
