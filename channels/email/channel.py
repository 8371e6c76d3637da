"""EmailChannel: replies leave as multipart mail over SMTP, threaded and traceable.

Standards: RFC 5322 (Message-ID, In-Reply-To, References), RFC 3834
(Auto-Submitted), RFC 3464 (the bounces that come back); client: smtplib.

``render`` reads the ticket, picks the mailbox, fixes the Message-ID on the
message (so a retry sends the same one and replies thread) and returns bytes
ready to send; ``transmit`` only talks SMTP.
"""

from __future__ import annotations

import logging
import mimetypes
import re
import secrets
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

from flask import render_template
from markupsafe import Markup
from sqlalchemy import select

from channels.base import IdentityKind, PermanentDeliveryError, SendResult
from channels.email.mailboxes import (
    SmtpSettings,
    mailbox_for_inbox,
    open_smtp,
    own_addresses,
    smtp_settings,
)
from channels.email.oauth import TokenUnavailable
from helpdesk import attachments
from helpdesk.extensions import db
from helpdesk.models import Direction, Message, utcnow
from helpdesk.tokens import ticket_token

log = logging.getLogger(__name__)

#: References keeps the first id (the thread root) and this many of the newest.
MAX_REFERENCES = 20
_TICKET_TAG = re.compile(r"\s*\[#\d+\]\s*")
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw)\s*:", re.IGNORECASE)
AUTOMATIC_KINDS = frozenset({"automation", "system"})


@dataclass(frozen=True)
class OutgoingMail:
    """Everything ``transmit`` needs, detached from the database."""

    smtp: SmtpSettings
    envelope_from: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str


def is_automatic(message: Message) -> bool:
    """Mail no person wrote; it must say so, so other robots do not answer it."""
    return bool(message.is_by_automation) or message.author_kind in AUTOMATIC_KINDS


def new_message_id(ticket_id: int, domain: str) -> str:
    """``rapport.TOKEN.SUFFIX@domain``: the parser finds the ticket token in replies.

    The suffix must hold no dot: the parser takes everything between
    ``rapport.`` and the last dot before ``@`` as the token.
    """
    return f"rapport.{ticket_token(ticket_id)}.{secrets.token_hex(8)}@{domain}"


class EmailChannel:
    """Send ticket replies by SMTP from the ticket's mailbox."""

    name = "email"
    # Safe: the Message-ID is fixed on the message before the first attempt and
    # reused by every retry, so a mail sent twice (a crash after the server took
    # it, before we recorded "sent") arrives with the same Message-ID, and mail
    # clients show one message per Message-ID. A duplicate is harmless; a lost
    # reply is not.
    supports_idempotent_retry = True

    def render(self, message: Message, *, idempotency_key: str) -> OutgoingMail:
        ticket = message.ticket
        mailbox = mailbox_for_inbox(ticket.inbox)
        if mailbox is None:
            raise PermanentDeliveryError("no active mailbox to send email from")
        contact_email = ticket.contact.email if ticket.contact else None
        if not contact_email:
            raise PermanentDeliveryError("the contact has no email address")
        own = own_addresses()
        cc = [
            p.value
            for p in ticket.participants
            if p.kind is IdentityKind.EMAIL
            and p.value.lower() not in own
            and p.value.lower() != contact_email.lower()
        ]
        if not message.rfc_message_id or not message.rfc_message_id.startswith("rapport."):
            message.rfc_message_id = new_message_id(ticket.id, mailbox.domain)
            message.external_id = message.external_id or message.rfc_message_id
            db.session.flush()
        earlier = self._earlier_ids(message)

        mail = EmailMessage(policy=SMTP)
        mail["From"] = formataddr((mailbox.from_name or mailbox.name or "", mailbox.address))
        mail["To"] = formataddr((ticket.contact.name or "", contact_email))
        if cc:
            mail["Cc"] = ", ".join(cc)
        mail["Subject"] = self._subject(ticket.subject or message.subject or "", ticket.id, earlier)
        mail["Date"] = format_datetime(message.created_at or utcnow())
        mail["Message-ID"] = f"<{message.rfc_message_id}>"
        if earlier:
            mail["In-Reply-To"] = f"<{earlier[-1]}>"
            refs = earlier if len(earlier) <= MAX_REFERENCES else [earlier[0], *earlier[-19:]]
            mail["References"] = " ".join(f"<{i}>" for i in refs)
        mail["X-Rapport-Ticket"] = ticket_token(ticket.id)
        if is_automatic(message):
            mail["Auto-Submitted"] = "auto-replied"
            mail["X-Rapport-Loop"] = mailbox.address
            # Ask Exchange not to send out-of-office replies to our robots.
            mail["X-Auto-Response-Suppress"] = "All"
        mail.set_content(message.text or "")
        if message.html:
            mail.add_alternative(
                render_template(
                    "email/message.html",
                    body=Markup(message.html),  # noqa: S704 - stored HTML is sanitized
                    ticket=ticket,
                    mailbox=mailbox,
                ),
                subtype="html",
            )
        self._attach(mail, message)
        return OutgoingMail(
            smtp=smtp_settings(mailbox),
            envelope_from=mailbox.address,
            recipients=(contact_email, *cc),
            data=mail.as_bytes(policy=SMTP),
            message_id=message.rfc_message_id,
        )

    @staticmethod
    def _earlier_ids(message: Message) -> list[str]:
        rows = db.session.execute(
            select(Message.rfc_message_id)
            .where(
                Message.ticket_id == message.ticket_id,
                Message.id != message.id,
                Message.id < message.id,
                Message.rfc_message_id.is_not(None),
                Message.direction != Direction.NOTE,
            )
            .order_by(Message.created_at, Message.id)
        ).scalars()
        return list(dict.fromkeys(r for r in rows if r))

    @staticmethod
    def _subject(base: str, ticket_id: int, earlier: list[str]) -> str:
        base = _TICKET_TAG.sub(" ", base).strip() or "Your request"
        if earlier and not _REPLY_PREFIX.match(base):
            base = f"Re: {base}"
        return f"{base} [#{ticket_id}]"

    @staticmethod
    def _attach(mail: EmailMessage, message: Message) -> None:
        for item in message.attachments:
            if not item.sha256:
                continue  # never kept (too large); nothing to send
            path = attachments.path_for(item.sha256)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise PermanentDeliveryError(
                    f"the attachment '{item.filename}' is missing from storage"
                ) from None
            kind = item.content_type or mimetypes.guess_type(item.filename)[0] or ""
            maintype, _, subtype = kind.partition("/")
            if not maintype or not subtype:
                maintype, subtype = "application", "octet-stream"
            mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=item.filename)

    def transmit(self, payload: OutgoingMail) -> SendResult:
        try:
            smtp = open_smtp(payload.smtp)
        except smtplib.SMTPAuthenticationError as exc:
            # A wrong password is a setting an admin fixes; keep retrying meanwhile.
            raise ConnectionError(f"SMTP login failed: {_reply(exc)}") from exc
        except TokenUnavailable as exc:  # the OAuth provider refused: the same, in its words
            raise ConnectionError(f"SMTP login failed: {exc}") from exc
        try:
            refused = smtp.sendmail(payload.envelope_from, list(payload.recipients), payload.data)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            text = "; ".join(
                f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in exc.recipients.items()
            )
            if codes and all(code >= 500 for code in codes):
                raise PermanentDeliveryError(f"SMTP refused every recipient: {text}") from exc
            raise ConnectionError(f"SMTP refused the recipients for now: {text}") from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                raise PermanentDeliveryError(f"SMTP refused the mail: {_reply(exc)}") from exc
            raise
        finally:
            try:
                smtp.quit()
            except Exception:
                smtp.close()
        if refused:
            log.warning(
                "mail %s: some recipients refused: %s",
                payload.message_id,
                {r: f"{c} {_text(m)}" for r, (c, m) in refused.items()},
            )
        return SendResult(external_id=payload.message_id)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}".strip()
