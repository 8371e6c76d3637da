"""A big poller pass parses in a worker process; the tickets are the same either way."""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import pytest
from sqlalchemy import select

from channels.email import imap, inbound
from channels.email.parsepool import ParsePool
from helpdesk.extensions import db
from helpdesk.models import Message, Ticket
from tests.integration.email.conftest import make_mail

pytestmark = pytest.mark.slow


def mails(count: int) -> list[bytes]:
    first = make_mail(subject="Order 1 is late", message_id="<order-1@client.example>")
    reply = make_mail(
        subject="Re: Order 1 is late",
        message_id="<order-1-again@client.example>",
        headers={"In-Reply-To": "<order-1@client.example>"},
    )
    others = [
        make_mail(subject=f"Question {i}", sender=f"c{i}@example.test", html=f"<p>Hi {i}</p>")
        for i in range(count - 2)
    ]
    return [first, reply, *others]


def stored() -> list[tuple[str, str, str]]:
    return [
        (m.ticket.subject, m.text.strip(), (m.html or "").strip())
        for m in db.session.scalars(select(Message).order_by(Message.id))
    ]


@pytest.fixture
def submitted(monkeypatch) -> list[int]:
    """How many mails went to parse workers, per submit."""
    sizes: list[int] = []
    submit = ParsePool.submit

    def counting(self, raws):
        sizes.append(len(raws))
        return submit(self, raws)

    monkeypatch.setattr(ParsePool, "submit", counting)
    return sizes


def test_a_big_pass_is_parsed_by_a_worker_process_into_the_same_tickets(
    mailbox, append, poll, monkeypatch, submitted
):
    monkeypatch.setattr(imap, "PARSE_POOL_MIN_MAILS", 4)
    monkeypatch.setattr(imap, "BODY_BATCH", 3)  # fetched in groups of 3 ...
    monkeypatch.setattr(imap, "PARSE_SLICE", 2)  # ... and parsed in slices of 2

    def not_here(*_args, **_kwargs):
        raise AssertionError("parsed in the poller, not in the worker")

    # The worker process imports its own parser; only the poller's is replaced.
    monkeypatch.setattr(inbound, "parse_email", not_here)
    append(*mails(5))
    result = poll(mailbox)

    assert result.status == "done" and result.ingested == 5 and result.quarantined == 0
    assert submitted == [2, 1, 2]
    assert db.session.scalar(select(Ticket).where(Ticket.subject == "Order 1 is late")) is not None
    assert len(db.session.scalars(select(Ticket)).all()) == 4  # the reply joined the first
    assert ("Question 0", "Hello, my parcel has not arrived.", "<p>Hi 0</p>") in stored()


def test_a_small_pass_starts_no_worker(mailbox, append, poll, submitted):
    append(*mails(3))
    assert poll(mailbox).ingested == 3
    assert submitted == []


def test_a_failing_worker_costs_only_speed_the_poller_parses_instead(
    mailbox, append, poll, monkeypatch
):
    monkeypatch.setattr(imap, "PARSE_POOL_MIN_MAILS", 2)

    def broken(self, raws):
        failed: Future = Future()
        failed.set_exception(BrokenProcessPool("a worker died"))
        return failed

    monkeypatch.setattr(ParsePool, "submit", broken)
    append(*mails(4))
    result = poll(mailbox)
    assert result.status == "done" and result.ingested == 4 and result.quarantined == 0
    assert len(db.session.scalars(select(Ticket)).all()) == 3
