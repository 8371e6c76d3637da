"""Chatwoot's real mail through the IMAP path: no crash, no duplicate, and the
manifest's ingest-level expectations (the unit test skips those)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from channels.base import IdentityKind, SenderIdentity, ThreadingHints
from channels.email import parse_email
from channels.email.inbound import MailboxRef, ingest_raw
from channels.email.mailboxes import create_mailbox, own_addresses
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.ingest import ingest_message
from helpdesk.models import Contact, Direction, Message, Ticket
from helpdesk.models.quarantine import QuarantinedItem
from tests.factories import inbound
from tests.integration.email.conftest import CHATWOOT

needs_corpus = pytest.mark.skipif(
    not (CHATWOOT / "MANIFEST.json").is_file(), reason=f"corpus not found at {CHATWOOT}"
)


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@needs_corpus
@pytest.mark.slow
def test_every_corpus_mail_goes_through_imap_once_without_crash_or_duplicate(mailbox, append, poll):
    files = sorted(CHATWOOT.glob("*.eml"))
    raws = [path.read_bytes() for path in files]
    append(*raws)

    result = poll(mailbox)

    assert result.status == "done" and result.seen == len(files)
    assert count(QuarantinedItem) == 0
    # Several fixtures share one Message-ID: each distinct id is stored exactly once.
    expected = {parse_email(raw).external_id for raw in raws}
    stored = list(db.session.scalars(select(Message.external_id)))
    assert len(stored) == len(set(stored)) == len(expected)
    assert set(stored) == expected

    again = poll(mailbox, client_factory=_rescan_factory())
    assert again.ingested == 0 and count(Message) == len(expected)


def _rescan_factory() -> Callable[..., Any]:
    """Poll again from UID 1, as after a lost UID state."""
    from sqlalchemy import update

    from channels.email.imap import connect
    from channels.email.models import Mailbox

    def factory(settings: Any) -> Any:
        db.session.execute(update(Mailbox).values(last_uid=0))
        db.session.commit()
        return connect(settings)

    return factory


# Manifest expectations that need the database --------------------------------------

INBOX = MailboxRef(id=0, address="care@example.com")


def _entries(*fields: str, needs: str = "") -> list[Any]:
    if not (CHATWOOT / "MANIFEST.json").is_file():
        return [
            pytest.param(None, marks=pytest.mark.skip(reason=f"corpus not found at {CHATWOOT}"))
        ]
    entries = json.loads((CHATWOOT / "MANIFEST.json").read_text(encoding="utf-8"))
    return [
        pytest.param(entry, id=f"{entry['file']}-{entry['field']}")
        for entry in entries
        if entry["field"] in fields and needs in entry.get("precondition", "")
    ]


def _raw(name: str) -> bytes:
    return (CHATWOOT / name).read_bytes()


def _mailbox(address: str) -> MailboxRef:
    box = create_mailbox(actor=Actor.system("test"), name=address, address=address)
    db.session.commit()
    return MailboxRef(id=box.id, address=box.address)


def _thread_with_message_id(message_id: str) -> Ticket:
    """A ticket that already holds a message with this Message-ID."""
    result = ingest_message(
        inbound(
            "Earlier message",
            sender="sony@chatwoot.com",
            external_id=message_id,
            threading=ThreadingHints(message_id=message_id),
        )
    )
    db.session.commit()
    return result.ticket


# Chatwoot reply addresses (reply+<uuid>@…) name a conversation; Rapport threads by
# a signed token in our own Message-ID instead (covered in test_sending.py).
CHATWOOT_REPLY_ADDRESS = {"reply.eml", "forwarder_email.eml"}
# In Chatwoot's own Message-ID format: the equivalent precondition is a stored message.
STORED_IDS = {
    "in_reply_to.eml": "0CB459E0-0336-41DA-BC88-E6E28C697DDB@chatwoot.com",
    "references.eml": "test-reference-id",
    "reply_to.eml": "conversation/6bdc3f4d-0bec-4515-a284-5d916fdde489/messages/123@test.com",
}


@pytest.mark.parametrize("entry", _entries("appended_to_existing_thread"))
def test_manifest_reply_is_appended_to_the_existing_ticket(app, entry):
    if entry["file"] in CHATWOOT_REPLY_ADDRESS:
        pytest.skip("Chatwoot reply+<uuid> addresses; Rapport threads by its signed token")
    ticket = _thread_with_message_id(STORED_IDS[entry["file"]])
    outcome = ingest_raw(_raw(entry["file"]), mailbox=INBOX, own=set())
    db.session.commit()
    assert (outcome.ticket_id == ticket.id) is entry["value"]
    assert count(Ticket) == 1


# Content checks on a fresh mail are parser-level (the unit test); these need a thread.
@pytest.mark.parametrize("entry", _entries("message_content", needs="conversation"))
def test_manifest_message_content_of_replies(app, entry):
    name = entry["file"]
    if name in CHATWOOT_REPLY_ADDRESS or name == "mail_with_quote.eml":
        pytest.skip("reply address threading / quote kept by Chatwoot (see the unit test)")
    if name in STORED_IDS:
        _thread_with_message_id(STORED_IDS[name])
    outcome = ingest_raw(_raw(name), mailbox=INBOX, own=set())
    db.session.commit()
    message = db.session.get(Message, outcome.message_id)
    content = message.display_text
    if entry["op"] == "eq":
        assert content == entry["value"]
    else:
        assert entry["value"] in content


@pytest.mark.parametrize("entry", _entries("creates_ticket"))
def test_manifest_creates_ticket(app, entry):
    precondition = entry.get("precondition", "")
    if "own outbound sender address is accounts@chatwoot.com" in precondition:
        inbox = _mailbox("sojan@chatwoot.com")
        _mailbox("accounts@chatwoot.com")
    else:
        inbox = _mailbox("care@example.com")
    outcome = ingest_raw(_raw(entry["file"]), mailbox=inbox, own=own_addresses())
    db.session.commit()
    assert outcome.created_ticket is entry["value"]
    assert (count(Ticket) == 1) is entry["value"]
    if entry["value"]:
        assert db.session.get(Ticket, outcome.ticket_id).inbox == inbox.inbox


@pytest.mark.parametrize("entry", _entries("matched_inbox_address"))
def test_manifest_mail_is_routed_to_the_inbox_in_its_recipients(app, entry):
    _mailbox("other@example.com")
    expected = _mailbox(entry["value"])
    outcome = ingest_raw(_raw(entry["file"]), mailbox=None, own=set())
    db.session.commit()
    assert db.session.get(Ticket, outcome.ticket_id).inbox == expected.inbox


@pytest.mark.parametrize("entry", _entries("existing_contact_reused"))
def test_manifest_existing_contact_is_reused(app, entry):
    from helpdesk.operations.contacts import create_contact

    create_contact(
        actor=Actor.system("test"),
        name="Sony",
        identities=[SenderIdentity(IdentityKind.EMAIL, "sony@chatwoot.com")],
    )
    db.session.commit()
    ingest_raw(_raw(entry["file"]), mailbox=INBOX, own=set())
    db.session.commit()
    assert (count(Contact) == 1) is entry["value"]


@pytest.mark.parametrize("entry", _entries("dedupe_by_message_id"))
def test_manifest_same_message_id_is_stored_once(app, entry):
    first = ingest_raw(_raw(entry["file"]), mailbox=INBOX, own=set())
    second = ingest_raw(_raw(entry["file"]), mailbox=INBOX, own=set())
    db.session.commit()
    assert (second.status == "duplicate" and second.message_id == first.message_id) is entry[
        "value"
    ]
    assert count(Message) == 1


@pytest.mark.slow
@pytest.mark.parametrize("entry", _entries("imap_skip_if_message_id_known"))
def test_manifest_imap_skips_known_message_ids_without_the_body(entry, mailbox, append, poll):
    from channels.email.imap import connect

    _thread_with_message_id(parse_email(_raw(entry["file"])).external_id)
    bodies = []

    def spying(settings: Any) -> Any:
        client = connect(settings)
        original = client.fetch
        client.fetch = lambda uids, items, *a, **k: (
            bodies.extend(uids) if b"BODY.PEEK[]" in items else None,
            original(uids, items, *a, **k),
        )[1]
        return client

    append(_raw(entry["file"]))
    result = poll(mailbox, client_factory=spying)
    assert (result.skipped_known == 1 and not bodies) is entry["value"]
    assert count(Message) == 1
    assert db.session.scalars(select(Message.direction)).one() is Direction.INBOUND
