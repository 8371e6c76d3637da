"""The API channel: conversations an integration starts through ``POST /api/v1/messages``.

Replies are not pushed anywhere; the integration reads them back from the API.
"""

from __future__ import annotations

from channels.base import SendResult, register


class ApiChannel:
    """Deliver by making the reply available to the integration that owns the conversation."""

    name = "api"
    supports_idempotent_retry = True

    def render(self, message: object, *, idempotency_key: str) -> str:
        return idempotency_key

    def transmit(self, payload: str) -> SendResult:
        return SendResult(external_id=f"api:{payload}")


register(ApiChannel())
