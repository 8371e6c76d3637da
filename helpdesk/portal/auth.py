"""Magic links and the portal session: who the customer on this request is.

A link carries a signed, timestamped token (itsdangerous, the app's secret key
and a salt of its own) naming the contact and a random nonce. It works for
``RAPPORT_PORTAL_LINK_MINUTES`` and once: using it records the nonce in the
audit trail (``portal.link_used``) while the contact's row is locked, so a
second use, even a concurrent one, finds it. The portal session lives under its
own keys and never touches the agents' Flask-Login session.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from flask import Flask, current_app, has_request_context, redirect, request, session, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import AuditEvent, Contact, utcnow
from helpdesk.operations import audit
from helpdesk.operations.contacts import live_contact as _live_contact

F = TypeVar("F", bound=Callable[..., Any])

SALT = "rapport.portal.sign-in"
USED = "portal.link_used"
SESSION_CONTACT = "portal_contact_id"
SESSION_SINCE = "portal_signed_in_at"
SESSION_LANG = "portal_lang"
_CACHE = "rapport.portal_contact"
_SAFE_NEXT = re.compile(r"^/portal/[\w\-/]*$")


class LinkError(Exception):
    """A sign-in link that cannot sign anyone in; ``reason`` is expired, used or invalid."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LinkClaim:
    contact_id: int
    nonce: str
    next_path: str | None = None


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def link_minutes() -> int:
    return int(current_app.config.get("RAPPORT_PORTAL_LINK_MINUTES", 30))


def safe_next(path: str | None) -> str | None:
    """Keep a return path only if it stays inside the portal."""
    return path if path and _SAFE_NEXT.match(path) and "//" not in path else None


def mint_link_token(contact_id: int, nonce: str, next_path: str | None = None) -> str:
    """Return the token a sign-in link carries."""
    payload: dict[str, Any] = {"c": contact_id, "n": nonce}
    if safe_next(next_path):
        payload["x"] = next_path
    return _serializer().dumps(payload)


def read_link_token(token: str) -> LinkClaim:
    """Check signature and age; raises LinkError("expired"|"invalid")."""
    try:
        data = _serializer().loads(token, max_age=link_minutes() * 60)
    except SignatureExpired:
        raise LinkError("expired") from None
    except BadSignature:
        raise LinkError("invalid") from None
    if not isinstance(data, dict) or not isinstance(data.get("c"), int) or not data.get("n"):
        raise LinkError("invalid")
    return LinkClaim(int(data["c"]), str(data["n"]), safe_next(data.get("x")))


def live_contact(contact: Contact | None) -> Contact | None:
    """Follow merges to the contact that was kept; None stays None."""
    return _live_contact(contact) if contact is not None else None


def _locked_contact(contact_id: int) -> Contact | None:
    # FOR UPDATE serialises two uses of links for one contact on PostgreSQL; on
    # SQLite every transaction takes the write lock up front (BEGIN IMMEDIATE).
    return db.session.execute(
        select(Contact).where(Contact.id == contact_id).with_for_update()
    ).scalar_one_or_none()


def link_state(token: str) -> LinkClaim:
    """Check a link without using it; raises LinkError for expired, used or invalid."""
    claim = read_link_token(token)
    contact = live_contact(db.session.get(Contact, claim.contact_id))
    if contact is None:
        raise LinkError("invalid")
    if _nonce_used(claim.nonce, {claim.contact_id, contact.id}):
        raise LinkError("used")
    return claim


def use_link(token: str, *, ip: str | None = None) -> tuple[Contact, LinkClaim]:
    """Spend a link: return the (live) contact it signs in. The caller commits."""
    claim = read_link_token(token)
    contact = _locked_contact(claim.contact_id)
    live = live_contact(contact)
    if contact is None or live is None:
        raise LinkError("invalid")
    if live.id != contact.id:
        _locked_contact(live.id)
    if _nonce_used(claim.nonce, {contact.id, live.id}):
        raise LinkError("used")
    audit.record(USED, actor=Actor.for_contact(live), contact_id=live.id, nonce=claim.nonce, ip=ip)
    db.session.flush()
    return live, claim


def _nonce_used(nonce: str, contact_ids: set[int]) -> bool:
    # A link lives only so long, so only uses within that window can name its nonce;
    # comparing in Python keeps the query free of JSON operators (SQLite and PostgreSQL).
    since = utcnow() - timedelta(minutes=link_minutes() + 5)
    rows = db.session.scalars(
        select(AuditEvent.data).where(
            AuditEvent.action == USED,
            AuditEvent.contact_id.in_(contact_ids),
            AuditEvent.created_at >= since,
        )
    )
    return any((data or {}).get("nonce") == nonce for data in rows)


# ------------------------------------------------------------------ the session


def sign_in(contact: Contact) -> None:
    """Start a fresh session for ``contact``: nothing from before survives (no fixation)."""
    language = session.get(SESSION_LANG)
    session.clear()
    session[SESSION_CONTACT] = contact.id
    session[SESSION_SINCE] = int(time.time())
    if language:
        session[SESSION_LANG] = language
    request.environ.pop(_CACHE, None)


def sign_out() -> None:
    for key in (SESSION_CONTACT, SESSION_SINCE):
        session.pop(key, None)
    request.environ.pop(_CACHE, None)


def current_contact() -> Contact | None:
    """The signed-in customer (after merges), or None; looked up once per request."""
    if _CACHE in request.environ:
        return request.environ[_CACHE]
    contact = None
    contact_id = session.get(SESSION_CONTACT)
    since = session.get(SESSION_SINCE)
    hours = int(current_app.config.get("RAPPORT_PORTAL_SESSION_HOURS", 12))
    if isinstance(contact_id, int) and isinstance(since, int):
        if time.time() - since <= hours * 3600:
            contact = live_contact(db.session.get(Contact, contact_id))
        if contact is None:
            sign_out()
    request.environ[_CACHE] = contact
    return contact


def customer_required(view: F) -> F:
    """Send visitors without a portal session to the sign-in page."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_contact() is None:
            return redirect(url_for("portal.sign_in", next=safe_next(request.path)))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


# ------------------------------------------------------------------ language


def remember_language() -> None:
    """``?lang=`` on a portal page is remembered for the rest of the visit."""
    asked = request.args.get("lang")
    if asked in current_app.config["RAPPORT_LOCALES"]:
        session[SESSION_LANG] = asked


def portal_locale() -> str | None:
    """On portal pages: the language chosen here, the contact's own, then the browser's."""
    supported = current_app.config["RAPPORT_LOCALES"]
    asked = request.args.get("lang")
    if asked in supported:
        return str(asked)
    chosen = session.get(SESSION_LANG)
    if chosen in supported:
        return str(chosen)
    contact = current_contact()
    if contact is not None and contact.locale in supported:
        return str(contact.locale)
    return request.accept_languages.best_match(supported)


def install_locale_selector(app: Flask) -> None:
    """Put the portal's choice in front of the app's selector, for portal pages only.

    Agents' pages keep the app's rule (the user's own language first); a
    customer's explicit choice and then their contact locale decide here.
    """
    config = app.extensions["babel"]
    previous = config.locale_selector
    if getattr(previous, "_rapport_portal", False):
        return

    def select_locale() -> str | None:
        if has_request_context() and request.blueprint == "portal":
            return portal_locale()
        return previous() if previous is not None else None

    select_locale._rapport_portal = True  # type: ignore[attr-defined]
    config.locale_selector = select_locale
