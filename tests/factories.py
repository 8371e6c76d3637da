"""Builders shared by tests: inbound messages and a channel that records what it sends."""

from __future__ import annotations

import uuid
from typing import Any

from channels.base import (
    IdentityKind,
    InboundAttachment,
    InboundMessage,
    SenderIdentity,
    SendResult,
    ThreadingHints,
)


def inbound(
    text: str = "Hello, my parcel has not arrived.",
    *,
    channel: str = "email",
    sender: str = "ada@example.test",
    kind: IdentityKind = IdentityKind.EMAIL,
    name: str | None = "Ada Lovelace",
    external_id: str | None = None,
    subject: str | None = "Parcel missing",
    threading: ThreadingHints | None = None,
    attachments: tuple[InboundAttachment, ...] = (),
    **kw: Any,
) -> InboundMessage:
    """Build an InboundMessage with sensible defaults."""
    return InboundMessage(
        channel=channel,
        external_id=external_id or f"ext-{uuid.uuid4().hex}",
        sender=SenderIdentity(kind, sender, name),
        text=text,
        subject=subject,
        threading=threading or ThreadingHints(),
        attachments=attachments,
        **kw,
    )


class RecordingChannel:
    """A channel that records what it was asked to send; can be told to fail."""

    supports_idempotent_retry = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[tuple[int, str]] = []
        self.fail_with: Exception | None = None

    def render(self, message: Any, *, idempotency_key: str) -> tuple[int, str]:
        return (message.id, idempotency_key)

    def transmit(self, payload: tuple[int, str]) -> SendResult:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(payload)
        return SendResult(external_id=f"{self.name}-{payload[0]}")
