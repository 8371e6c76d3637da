"""Portal operations: send sign-in links, list a customer's own tickets, take their messages.

Customers write through the one funnel in: a reply or a new request becomes an
``InboundMessage`` on channel ``portal`` and goes through ``ingest_message``,
which threads it (the explicit ticket hint is accepted only for the ticket's
own contact), reopens a finished ticket and fires the usual events.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import and_, not_, select
from sqlalchemy.orm import selectinload

from channels.base import (
    IdentityKind,
    InboundMessage,
    PermanentDeliveryError,
    SenderIdentity,
    ThreadingHints,
)
from helpdesk import events
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.ingest import IngestResult, ingest_message
from helpdesk.jobs import job
from helpdesk.models import Contact, Direction, Message, Ticket, TicketStatus, utcnow
from helpdesk.operations import audit
from helpdesk.operations.contacts import find_contact, normalize_identity

from .auth import link_minutes, mint_link_token, safe_next

if TYPE_CHECKING:  # pragma: no cover
    from channels.email.channel import OutgoingMail
    from channels.email.models import Mailbox

log = logging.getLogger(__name__)

CHANNEL = "portal"
ACTOR = Actor.system("portal")
MAX_BODY = 20_000
MAX_SUBJECT = 200
_KEY = re.compile(r"^[0-9a-f]{32}$")
NO_MAILBOX = (
    "portal: no active mailbox, so the sign-in link for contact #%s was not sent; "
    "add one under Admin → Mailboxes"
)


class PortalError(ValueError):
    """A customer's submission that cannot be taken; the message is safe to show."""


# ------------------------------------------------------------------ sign-in links


@dataclass(frozen=True, slots=True)
class SignInLinkRequested(events.Event):
    """Someone asked for a sign-in link for an address a contact owns."""

    name: ClassVar[str] = "portal.sign_in_link_requested"
    contact_id: int
    address: str
    nonce: str
    locale: str
    next_path: str | None = None


sign_in_link_requested = events.signal_for(SignInLinkRequested)  # type: ignore[arg-type]


def request_sign_in_link(
    address: str, *, locale: str, next_path: str | None = None
) -> Contact | None:
    """Note a link request for ``address``; the link is mailed after commit.

    Returns the contact, or None when no contact owns the address (the caller
    must answer both cases alike).
    """
    address = normalize_identity(IdentityKind.EMAIL, address or "")
    if "@" not in address or len(address) > 320:
        return None
    contact = find_contact(IdentityKind.EMAIL, address)
    if contact is None:
        return None
    audit.record("portal.link_requested", actor=ACTOR, contact_id=contact.id, address=address)
    events.on_commit(
        SignInLinkRequested(
            actor=ACTOR,
            contact_id=contact.id,
            address=address,
            nonce=uuid.uuid4().hex,
            locale=contact.locale or locale,
            next_path=safe_next(next_path),
        )
    )
    return contact


@sign_in_link_requested.connect
def _mail_the_link(sender: events.Event, event: SignInLinkRequested, **_: object) -> None:
    send_sign_in_link(event.contact_id, event.address, event.nonce, event.locale, event.next_path)


def sending_mailbox() -> Mailbox | None:
    """The first active mailbox: the portal's mail leaves from it."""
    from channels.email.mailboxes import mailbox_for_inbox

    return mailbox_for_inbox(None)


def public_url(path: str) -> str:
    """An absolute address on this installation, for links in mail."""
    return current_app.config["RAPPORT_PUBLIC_URL"].rstrip("/") + path


@job(retries=2, retry_delay=60)
def send_sign_in_link(
    contact_id: int, address: str, nonce: str, locale: str, next_path: str | None = None
) -> str:
    """Mail a one-time sign-in link from the first active mailbox; returns what happened."""
    from channels.email.channel import EmailChannel

    contact = db.session.get(Contact, contact_id)
    if contact is None:
        return "no-contact"
    mailbox = sending_mailbox()
    if mailbox is None:
        log.warning(NO_MAILBOX, contact_id)
        audit.record(
            "portal.link_not_sent", actor=ACTOR, contact_id=contact_id, reason="no active mailbox"
        )
        db.session.commit()
        return "no-mailbox"
    link = public_url(f"/portal/sign-in/{mint_link_token(contact_id, nonce, next_path)}")
    outgoing = compose_sign_in_mail(
        mailbox, address=address, name=contact.first_name, link=link, locale=locale
    )
    db.session.commit()  # no transaction held while SMTP talks
    try:
        EmailChannel().transmit(outgoing)
    except PermanentDeliveryError as exc:
        log.warning("portal: sign-in link for contact #%s refused: %s", contact_id, exc)
        return "refused"
    return "sent"


def compose_sign_in_mail(
    mailbox: Mailbox, *, address: str, name: str, link: str, locale: str
) -> OutgoingMail:
    """Write the sign-in mail in the customer's language, marked as automatic."""
    from channels.email.channel import OutgoingMail
    from channels.email.mailboxes import smtp_settings

    with force_locale(locale):
        subject = _("Your sign-in link")
        lines = [
            _("Hello %(name)s,", name=name) if name else _("Hello,"),
            "",
            _(
                "Use this link to sign in and see your requests. "
                "It works once, for %(minutes)s minutes:",
                minutes=link_minutes(),
            ),
            "",
            link,
            "",
            _("If you did not ask for it, ignore this email: nobody can sign in without the link."),
            "",
            mailbox.from_name or mailbox.name,
        ]
    mail = EmailMessage(policy=SMTP)
    mail["From"] = formataddr((mailbox.from_name or mailbox.name or "", mailbox.address))
    mail["To"] = address
    mail["Subject"] = subject
    mail["Date"] = format_datetime(utcnow())
    message_id = make_msgid(idstring="portal", domain=mailbox.domain)
    mail["Message-ID"] = message_id
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Auto-Response-Suppress"] = "All"
    mail.set_content("\n".join(lines))
    return OutgoingMail(
        smtp=smtp_settings(mailbox),
        envelope_from=mailbox.address,
        recipients=(address,),
        data=mail.as_bytes(policy=SMTP),
        message_id=message_id.strip("<>"),
    )


# ------------------------------------------------------------------ tickets


def customer_tickets(
    contact: Contact, *, page: int = 1, per_page: int = 20
) -> tuple[list[Ticket], bool]:
    """The contact's tickets, most recent activity first; returns (tickets, has_more)."""
    page = max(1, page)
    rows = list(
        db.session.scalars(
            select(Ticket)
            .where(Ticket.contact_id == contact.id, Ticket.merged_into_id.is_(None))
            .order_by(Ticket.last_activity_at.desc(), Ticket.id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page + 1)
        )
    )
    return rows[:per_page], len(rows) > per_page


def customer_ticket(contact: Contact, ticket_id: int) -> Ticket | None:
    """The ticket (after merges) if it belongs to ``contact``; None otherwise, alike."""
    from helpdesk.operations.tickets import get_ticket

    ticket = get_ticket(ticket_id)
    if ticket is None or ticket.contact_id != contact.id:
        return None
    return ticket


def public_thread(ticket: Ticket) -> list[Message]:
    """What the customer may read: messages in and out, never notes nor robots' mail to us."""
    return list(
        db.session.scalars(
            select(Message)
            .options(selectinload(Message.author), selectinload(Message.contact))
            .where(
                Message.ticket_id == ticket.id,
                Message.direction.in_((Direction.INBOUND, Direction.OUTBOUND)),
                not_(and_(Message.direction == Direction.INBOUND, Message.is_auto_reply)),
            )
            .order_by(Message.created_at, Message.id)
        )
    )


def new_submission_key() -> str:
    """A key the form carries, so a double submit stores one message."""
    return uuid.uuid4().hex


def _sender(contact: Contact) -> SenderIdentity:
    identity = next(
        (i for i in contact.identities if i.kind is IdentityKind.EMAIL),
        contact.identities[0] if contact.identities else None,
    )
    if identity is None:
        raise PortalError(_("Your account has no address we can file this under."))
    return SenderIdentity(identity.kind, identity.value)


def _external_id(contact: Contact, key: str | None) -> str:
    key = key if key and _KEY.match(key) else new_submission_key()
    return f"portal:{contact.id}:{key}"


def _clean_body(body: str | None) -> str:
    body = (body or "").replace("\r\n", "\n").strip()
    if not body:
        raise PortalError(_("Write a message first."))
    if len(body) > MAX_BODY:
        raise PortalError(_("The message is too long; keep it under %(n)s characters.", n=MAX_BODY))
    return body


def submit_reply(
    contact: Contact, ticket: Ticket, *, body: str | None, key: str | None, language: str | None
) -> IngestResult:
    """Add the customer's reply to their ticket (reopening it when finished). Caller commits."""
    if ticket.contact_id != contact.id:
        raise PortalError(_("This request is not yours."))
    message = InboundMessage(
        channel=CHANNEL,
        external_id=_external_id(contact, key),
        sender=_sender(contact),
        text=_clean_body(body),
        threading=ThreadingHints(ticket_id=ticket.id),
        language=language,
        metadata={"via": "portal"},
    )
    return ingest_message(message)


def open_ticket(
    contact: Contact,
    *,
    subject: str | None,
    body: str | None,
    key: str | None,
    language: str | None,
) -> IngestResult:
    """Start a new request for the customer on the portal channel. Caller commits."""
    subject = " ".join((subject or "").split())
    if not subject:
        raise PortalError(_("Give your request a subject."))
    message = InboundMessage(
        channel=CHANNEL,
        external_id=_external_id(contact, key),
        sender=_sender(contact),
        subject=subject[:MAX_SUBJECT],
        text=_clean_body(body),
        language=language,
        metadata={"via": "portal"},
    )
    return ingest_message(message)


def status_label(status: TicketStatus) -> str:
    """A ticket's state in the customer's words."""
    if status.is_active:
        return _("Open")
    if status is TicketStatus.PENDING:
        return _("Waiting for your reply")
    if status is TicketStatus.SOLVED:
        return _("Solved")
    return _("Closed")


# ------------------------------------------------------------------ rewards


@dataclass(frozen=True, slots=True)
class PortalRewards:
    """What the rewards page shows: only what is the customer's to use or to know."""

    vouchers: list[Any]
    points_available: int
    points_pending: int
    tier: str | None
    referral_code: str
    referral_url: str


def _merged_away_ids(contact: Contact) -> list[int]:
    """Contacts merged (directly or in turn) into ``contact``; their vouchers stay theirs."""
    found: list[int] = []
    frontier = [contact.id]
    while frontier and len(found) < 1000:
        frontier = list(
            db.session.scalars(select(Contact.id).where(Contact.merged_into_id.in_(frontier)))
        )
        found.extend(frontier)
    return found


def customer_rewards(
    contact: Contact, *, ip: str | None = None, user_agent: str | None = None
) -> PortalRewards:
    """Vouchers, points, tier and referral link; creates the referral code on first visit."""
    from automation.incentives.models import Voucher, VoucherStatus
    from automation.incentives.views import contact_incentives
    from automation.loyalty.models import LoyaltyTier
    from automation.loyalty.operations import referral_code_for

    hidden = (VoucherStatus.PENDING_APPROVAL, VoucherStatus.VOID)
    incentives = contact_incentives(contact, limit=50)
    vouchers = [v for v in incentives.vouchers if v.status not in hidden]
    older = _merged_away_ids(contact)
    if older:
        vouchers += db.session.scalars(
            select(Voucher)
            .where(Voucher.contact_id.in_(older), Voucher.status.not_in(hidden))
            .order_by(Voucher.created_at.desc())
            .limit(50)
        )
    tier = None
    if incentives.tier:
        tier = db.session.scalar(select(LoyaltyTier.name).where(LoyaltyTier.key == incentives.tier))
        tier = tier or incentives.tier.capitalize()
    code = referral_code_for(
        contact, actor=Actor.for_contact(contact), ip=ip, user_agent=(user_agent or "")[:400]
    )
    return PortalRewards(
        vouchers=vouchers,
        points_available=incentives.points_available,
        points_pending=incentives.points_pending,
        tier=tier,
        referral_code=code.code,
        referral_url=referral_url(code.code),
    )


def referral_url(code: str) -> str:
    """The shop address (RAPPORT_SHOP_URL, else RAPPORT_PUBLIC_URL) with ``ref=CODE`` added."""
    base = current_app.config.get("RAPPORT_SHOP_URL") or current_app.config["RAPPORT_PUBLIC_URL"]
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "ref"]
    query.append(("ref", code))
    return urlunsplit(parts._replace(query=urlencode(query)))
