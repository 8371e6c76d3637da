"""The channel contract: one frozen InboundMessage in, one registry of adapters out.

Every channel (email, web chat, Twilio, Telegram, the API) parses its provider's
payload into an :class:`InboundMessage` and hands it to
``helpdesk.ingest.ingest_message``. No channel creates tickets on its own.
Outbound, the delivery job looks the ticket's channel up in the registry and
calls its ``send``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from helpdesk.models import Message


class IdentityKind(enum.Enum):
    """How a contact is recognised on a channel; one identity belongs to one contact."""

    EMAIL = "email"
    PHONE = "phone"
    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"
    WIDGET = "widget"
    API = "api"


@dataclass(frozen=True, slots=True)
class SenderIdentity:
    """Who sent the message, as the channel knows them."""

    kind: IdentityKind
    value: str
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class InboundAttachment:
    """One attachment as received; bytes stay in memory until ingest stores them."""

    filename: str
    content_type: str
    data: bytes = b""
    content_id: str | None = None
    is_inline: bool = False
    #: Set when the attachment was not kept (too large); ``data`` is then empty.
    skipped_reason: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class ThreadingHints:
    """What a channel knows about which conversation this message continues."""

    message_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    #: A signed ticket token found in headers or body (providers that rewrite Message-ID).
    ticket_token: str | None = None
    #: ``[#1234]`` found in the subject; accepted only for the ticket's contact or participants.
    subject_ticket_number: int | None = None
    #: A chat session, Telegram chat or API conversation id.
    conversation_id: str | None = None
    #: A ticket the caller names explicitly (the API); still checked against the contact.
    ticket_id: int | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message from outside, normalised; the only thing ``ingest_message`` accepts."""

    channel: str
    #: Provider's id for dedupe: unique per channel (Message-ID, Twilio SID, update id).
    external_id: str
    sender: SenderIdentity
    text: str = ""
    subject: str | None = None
    #: Already sanitized HTML, or None.
    html: str | None = None
    #: The new text without quoted history or signature, for display.
    reply_text: str | None = None
    attachments: tuple[InboundAttachment, ...] = ()
    threading: ThreadingHints = field(default_factory=ThreadingHints)
    #: Other people on the conversation (email Cc), as identities.
    participants: tuple[SenderIdentity, ...] = ()
    is_auto_reply: bool = False
    is_bounce: bool = False
    #: For bounces: the Message-ID of our message that failed, and why.
    bounced_message_id: str | None = None
    bounce_reason: str | None = None
    sent_at: datetime | None = None
    language: str | None = None
    #: Which of our addresses received it ("email:3" for mailbox 3, "sms:+15550100");
    #: replies leave from the same one.
    inbox: str | None = None
    #: Team that new tickets from this inbox go to.
    team_id: int | None = None
    #: Provider-specific extras worth keeping (headers, raw ids); JSON-serialisable.
    metadata: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a channel reports after handing a message to its provider."""

    external_id: str | None = None


class PermanentDeliveryError(Exception):
    """The provider refused the message for good (bad address); do not retry."""


@runtime_checkable
class Channel(Protocol):
    """An adapter the outbound funnel can deliver through, in two steps.

    ``render`` reads what it needs from the database and returns a plain,
    self-contained payload; ``transmit`` talks to the provider and must not
    touch the database. The delivery job ends its transaction between the two,
    so no lock is held during a slow network call.
    """

    name: str
    #: True when sending twice with the same idempotency key is harmless
    #: (the provider or the recipient deduplicates), so an interrupted
    #: delivery may be retried instead of being flagged for a human.
    supports_idempotent_retry: bool

    def render(self, message: Message, *, idempotency_key: str) -> Any: ...

    def transmit(self, payload: Any) -> SendResult: ...


_registry: dict[str, Channel] = {}


def register(channel: Channel) -> Channel:
    """Make a channel available to the outbound funnel under its name."""
    _registry[channel.name] = channel
    return channel


def get_channel(name: str) -> Channel:
    """Return the adapter registered under ``name``; KeyError if there is none."""
    return _registry[name]


def registered_channels() -> dict[str, Channel]:
    """Return a copy of the registry, for diagnostics and tests."""
    return dict(_registry)
