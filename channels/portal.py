"""The portal channel: replies on portal tickets are read in the portal and announced by mail.

Customers open and answer portal tickets at ``/portal`` (``helpdesk.portal``);
their messages enter through ``ingest_message`` like every channel's. An agent's
reply is delivered by being stored: the portal shows it at once. If the contact
has an email address and a mailbox is active, ``render`` also writes a
notification mail (the reply's text and a link to the ticket) that ``transmit``
sends over SMTP. Its Message-ID carries the ticket token, so answering the mail
threads onto the same ticket. A notification the server refuses for good is
logged, not counted as a failed reply: the customer can still read it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from typing import TYPE_CHECKING

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _

from channels.base import PermanentDeliveryError, SendResult, register

if TYPE_CHECKING:  # pragma: no cover
    from channels.email.channel import OutgoingMail
    from helpdesk.models import Message

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PortalDelivery:
    """What ``transmit`` needs: the key, and the notification mail if one is due."""

    key: str
    mail: OutgoingMail | None = None
    #: Why no mail goes out (no address, no mailbox), for the log.
    skipped: str | None = None


class PortalChannel:
    """Deliver replies by showing them in the portal, and notify the customer by mail."""

    name = "portal"
    # The notification's Message-ID is fixed on the message before the first try,
    # so a repeat arrives as the same mail; the portal copy is the stored message.
    supports_idempotent_retry = True

    def render(self, message: Message, *, idempotency_key: str) -> PortalDelivery:
        from channels.email.channel import EmailChannel, OutgoingMail, is_automatic, new_message_id
        from channels.email.mailboxes import mailbox_for_inbox, smtp_settings
        from helpdesk.extensions import db
        from helpdesk.tokens import ticket_token

        ticket = message.ticket
        contact = ticket.contact
        address = contact.email if contact else None
        if not address:
            return PortalDelivery(idempotency_key, skipped="the contact has no email address")
        mailbox = mailbox_for_inbox(ticket.inbox)
        if mailbox is None:
            return PortalDelivery(idempotency_key, skipped="no active mailbox")
        if not message.rfc_message_id or not message.rfc_message_id.startswith("rapport."):
            message.rfc_message_id = new_message_id(ticket.id, mailbox.domain)
            db.session.flush()
        link = current_app.config["RAPPORT_PUBLIC_URL"].rstrip("/") + f"/portal/tickets/{ticket.id}"
        locale = contact.locale or ticket.language or current_app.config["BABEL_DEFAULT_LOCALE"]
        with force_locale(locale):
            subject = _("New reply to your request") + f" [#{ticket.id}]"
            body = "\n".join(
                [
                    _("There is a new reply to your request #%(number)s:", number=ticket.id),
                    "",
                    message.text or "",
                    "",
                    _("Read the whole conversation and answer at %(link)s", link=link),
                    _("or simply reply to this email."),
                ]
            )
        mail = EmailMessage(policy=SMTP)
        mail["From"] = formataddr((mailbox.from_name or mailbox.name or "", mailbox.address))
        mail["To"] = formataddr((contact.name or "", address))
        mail["Subject"] = subject
        mail["Date"] = format_datetime(message.created_at)
        mail["Message-ID"] = f"<{message.rfc_message_id}>"
        mail["X-Rapport-Ticket"] = ticket_token(ticket.id)
        if is_automatic(message):
            mail["Auto-Submitted"] = "auto-replied"
            mail["X-Auto-Response-Suppress"] = "All"
        mail.set_content(body)
        EmailChannel._attach(mail, message)
        return PortalDelivery(
            idempotency_key,
            mail=OutgoingMail(
                smtp=smtp_settings(mailbox),
                envelope_from=mailbox.address,
                recipients=(address,),
                data=mail.as_bytes(policy=SMTP),
                message_id=message.rfc_message_id,
            ),
        )

    def transmit(self, payload: PortalDelivery) -> SendResult:
        from channels.email.channel import EmailChannel

        if payload.mail is None:
            log.info("portal reply %s: no notification mail (%s)", payload.key, payload.skipped)
            return SendResult(external_id=f"portal:{payload.key}")
        try:
            EmailChannel().transmit(payload.mail)
        except PermanentDeliveryError as exc:
            # The reply is in the portal all the same; only the notice did not arrive.
            log.warning("portal reply %s: notification mail refused: %s", payload.key, exc)
            return SendResult(external_id=f"portal:{payload.key}")
        return SendResult(external_id=payload.mail.message_id)


register(PortalChannel())
