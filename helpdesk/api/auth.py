"""Bearer-token authentication and scopes for the API (``Authorization: Bearer rpt_...``)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from flask import current_app, g, request
from flask_limiter.util import get_remote_address
from sqlalchemy import or_, update

from helpdesk.actors import Actor
from helpdesk.auth.access import public
from helpdesk.extensions import db
from helpdesk.models import ApiToken, utcnow
from helpdesk.operations.users import SCOPES, find_api_token

from .base import ApiError

F = TypeVar("F", bound=Callable[..., Any])
_SCOPE_ATTR = "_rapport_api_scope"
#: ``last_used_at`` is written at most this often per token, so reads stay cheap.
LAST_USED_GRANULARITY = timedelta(minutes=1)
DEFAULT_RATE_LIMIT = "600/minute"


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def token_required(scope: str | None) -> Callable[[F], F]:
    """Require a live token carrying ``scope`` (None: any live token); the view is public to
    the session guard because it authenticates by token instead."""
    if scope is not None and scope not in SCOPES:
        raise ValueError(f"unknown scope {scope}")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            secret = _bearer()
            if secret is None:
                raise ApiError(
                    401,
                    "Send an API token as 'Authorization: Bearer rpt_...'.",
                    "unauthorized",
                )
            token = find_api_token(secret)
            if token is None:
                raise ApiError(401, "The API token is unknown or was revoked.", "unauthorized")
            if scope is not None and scope not in (token.scopes or []):
                raise ApiError(
                    403, f"The API token lacks the '{scope}' scope.", "forbidden", scope=scope
                )
            g.api_token = token
            _touch(token)
            return view(*args, **kwargs)

        setattr(wrapped, _SCOPE_ATTR, scope)
        return public(wrapped)  # type: ignore[return-value]

    return decorate


def _touch(token: ApiToken) -> None:
    """Record use, at most once a minute, without racing other requests on the same token."""
    now = utcnow()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_GRANULARITY:
        return
    db.session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token.id,
            or_(
                ApiToken.last_used_at.is_(None),
                ApiToken.last_used_at < now - LAST_USED_GRANULARITY,
            ),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def scope_of(view: Callable[..., Any]) -> str | None:
    """The scope a view requires (for the OpenAPI document)."""
    return getattr(view, _SCOPE_ATTR, None)


def is_token_view(view: Callable[..., Any]) -> bool:
    return hasattr(view, _SCOPE_ATTR)


def current_token() -> ApiToken:
    return g.api_token


def current_actor() -> Actor:
    return Actor.for_token(current_token())


def rate_limit_key() -> str:
    """Limit per token (by a hash of it); requests without one share their address's bucket."""
    secret = _bearer()
    if secret:
        return "token:" + hashlib.sha256(secret.encode()).hexdigest()[:32]
    return "ip:" + (get_remote_address() or "unknown")


def rate_limit() -> str:
    return str(current_app.config.get("RAPPORT_API_RATE_LIMIT", DEFAULT_RATE_LIMIT))
