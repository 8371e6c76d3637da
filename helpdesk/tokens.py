"""Short signed ticket tokens, carried in outgoing mail so replies find their ticket."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from flask import current_app

_TOKEN = re.compile(r"^(\d{1,12})-([a-z2-7]{10})$")


def _mac(ticket_id: int) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    digest = hmac.new(key, f"ticket:{ticket_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower()[:10]


def ticket_token(ticket_id: int) -> str:
    """Return a token naming ``ticket_id`` that only this installation can mint."""
    return f"{ticket_id}-{_mac(ticket_id)}"


def verify_ticket_token(token: str | None) -> int | None:
    """Return the ticket id a genuine token names, or None for a forged or malformed one."""
    if not token:
        return None
    match = _TOKEN.match(token.strip().lower())
    if not match:
        return None
    ticket_id = int(match.group(1))
    return ticket_id if hmac.compare_digest(match.group(2), _mac(ticket_id)) else None
