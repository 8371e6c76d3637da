"""Role checks: default deny. Every endpoint is public by name or needs a role."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, abort, request
from flask_login import current_user

from helpdesk.models import Role

F = TypeVar("F", bound=Callable[..., Any])
_ROLE_ATTR = "_rapport_min_role"
_PUBLIC_ATTR = "_rapport_public"


def role_required(role: Role) -> Callable[[F], F]:
    """Allow signed-in users whose role is at least ``role``."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                from helpdesk.extensions import login_manager

                return login_manager.unauthorized()
            if not current_user.can(role):
                abort(403, "Your role does not allow this.")
            return view(*args, **kwargs)

        setattr(wrapped, _ROLE_ATTR, role)
        return wrapped  # type: ignore[return-value]

    return decorate


def public(view: F) -> F:
    """Mark a view reachable without a session (it authenticates some other way, or not at all)."""
    setattr(view, _PUBLIC_ATTR, True)
    return view


def required_role(view: Callable[..., Any]) -> Role | None:
    return getattr(view, _ROLE_ATTR, None)


def is_public(view: Callable[..., Any]) -> bool:
    return bool(getattr(view, _PUBLIC_ATTR, False))


def install_default_deny(app: Flask) -> None:
    """Refuse any endpoint that declared neither a role nor that it is public."""

    @app.before_request
    def _guard() -> None:
        if request.endpoint is None or request.endpoint == "static":
            return
        view = app.view_functions.get(request.endpoint)
        if view is None or is_public(view) or required_role(view) is not None:
            return
        abort(403, "This page has no access rule; refusing by default.")
