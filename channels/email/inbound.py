"""Raw mail in: parse, adapt to our mailboxes, ingest, and quarantine what fails.

Every way mail arrives (the IMAP poller, ``flask ingest-eml``, ``flask
import-mbox``, a reprocess from quarantine) goes through :func:`process_raw`,
so they all behave the same: one savepoint per mail, and a mail that raises is
kept in quarantine instead of stopping the caller. The caller commits.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import traceback
from dataclasses import dataclass

from flask import current_app

from channels.base import InboundMessage
from channels.email.headers import parse_addresses
from channels.email.parse import CHANNEL, DEFAULT_MAX_ATTACHMENT_BYTES, parse_email
from helpdesk.extensions import db
from helpdesk.ingest import ingest_message
from helpdesk.quarantine import quarantine, register_reprocessor

log = logging.getLogger(__name__)

_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "X-Forwarded-To", "X-Forwarded-For")
_SOURCE_MAILBOX = re.compile(r"^mailbox:(\d+)\b")


@dataclass(frozen=True)
class MailboxRef:
    """The few mailbox facts the adapter needs, detached from the session."""

    id: int
    address: str
    team_id: int | None = None

    @property
    def inbox(self) -> str:
        return f"email:{self.id}"


@dataclass(frozen=True)
class Outcome:
    """What became of one raw mail."""

    #: "ingested", "duplicate", "ignored" (our own mail) or "quarantined".
    status: str
    message_id: int | None = None
    ticket_id: int | None = None
    created_ticket: bool = False
    quarantine_id: int | None = None
    detail: str = ""


def mailbox_ref(mailbox: object) -> MailboxRef:
    return MailboxRef(
        id=mailbox.id,  # type: ignore[attr-defined]
        address=mailbox.address.lower(),  # type: ignore[attr-defined]
        team_id=mailbox.team_id,  # type: ignore[attr-defined]
    )


def attachment_limit() -> int:
    """Bytes an attachment may have before it is noted instead of stored."""
    return int(current_app.config.get("RAPPORT_MAX_UPLOAD_BYTES", DEFAULT_MAX_ATTACHMENT_BYTES))


def to_inbound(
    raw: bytes,
    mailbox: MailboxRef | None,
    own: set[str],
    parsed: InboundMessage | None = None,
) -> InboundMessage | None:
    """Parse ``raw`` (unless a parse worker did) and fit it to the mailbox.

    Returns None for mail we sent ourselves.
    """
    msg = (
        parsed if parsed is not None else parse_email(raw, max_attachment_bytes=attachment_limit())
    )
    if msg.sender.value.lower() in own:
        # Loop guard: our own notifications or replies that came back to an inbox.
        return None
    # The parser lists every To/Cc address but the sender; our own addresses are not
    # customers, and Cc'ing them on replies would loop mail back into our inboxes.
    participants = tuple(p for p in msg.participants if p.value.lower() not in own)
    changes: dict[str, object] = {"participants": participants}
    if mailbox is not None:
        changes.update(inbox=mailbox.inbox, team_id=mailbox.team_id)
    return dataclasses.replace(msg, **changes)  # type: ignore[arg-type]


def recipients_of(msg: InboundMessage) -> list[str]:
    """Every address the mail was delivered to, for routing mail to a mailbox."""
    found: list[str] = []
    for key in ("to", "cc"):
        listed = msg.metadata.get(key)
        if isinstance(listed, list):
            found.extend(str(a) for a in listed)
    headers = msg.metadata.get("headers") or {}
    for name in _RECIPIENT_HEADERS:
        value = headers.get(name) if isinstance(headers, dict) else None
        if value:
            found.extend(address for _, address in parse_addresses(str(value)))
    return found


def ingest_raw(
    raw: bytes,
    *,
    mailbox: MailboxRef | None,
    own: set[str],
    parsed: InboundMessage | None = None,
) -> Outcome:
    """Parse and ingest one mail in the current transaction; raises on failure."""
    msg = to_inbound(raw, mailbox, own, parsed)
    if msg is None:
        return Outcome("ignored", detail="sent from one of our own addresses")
    if mailbox is None:
        from channels.email.mailboxes import mailbox_for_recipients

        matched = mailbox_for_recipients(recipients_of(msg))
        if matched is not None:
            ref = mailbox_ref(matched)
            msg = dataclasses.replace(msg, inbox=ref.inbox, team_id=ref.team_id)
    result = ingest_message(msg)
    return Outcome(
        "duplicate" if result.is_duplicate else "ingested",
        message_id=result.message_id,
        ticket_id=result.ticket_id,
        created_ticket=result.created_ticket,
    )


def process_raw(
    raw: bytes,
    *,
    mailbox: MailboxRef | None,
    own: set[str],
    source: str,
    parsed: InboundMessage | None = None,
) -> Outcome:
    """Ingest one mail inside a savepoint; on any error quarantine it instead.

    ``parsed`` is ``parse_email(raw)`` when a parse worker already made it.

    Never raises for a bad mail; a broken database connection still raises,
    because then quarantining fails too and the caller must retry later.
    """
    try:
        with db.session.begin_nested():
            return ingest_raw(raw, mailbox=mailbox, own=own, parsed=parsed)
    except Exception:
        error = traceback.format_exc()
        item = quarantine(CHANNEL, source, raw, error)
        return Outcome("quarantined", quarantine_id=item.id, detail=item.error_summary)


def _reprocess(item: object) -> str:
    """Feed a quarantined mail through the same path; raises if it still fails."""
    from channels.email.mailboxes import own_addresses
    from channels.email.models import Mailbox

    source = getattr(item, "source", "") or ""
    match = _SOURCE_MAILBOX.match(source)
    mailbox = db.session.get(Mailbox, int(match.group(1))) if match else None
    ref = mailbox_ref(mailbox) if mailbox is not None else None
    outcome = ingest_raw(getattr(item, "raw"), mailbox=ref, own=own_addresses())  # noqa: B009
    if outcome.status == "ignored":
        return "ignored: sent from one of our own addresses"
    if outcome.status == "duplicate":
        return f"already stored as message {outcome.message_id} on ticket #{outcome.ticket_id}"
    return f"ingested as message {outcome.message_id} on ticket #{outcome.ticket_id}"


register_reprocessor(CHANNEL, _reprocess)
