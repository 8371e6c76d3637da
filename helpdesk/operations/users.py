"""Agents and API tokens."""

from __future__ import annotations

import hashlib
import secrets

from flask import current_app
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import ApiToken, Role, Team, User, utcnow

from . import audit
from .contacts import OperationError

#: Every scope the API knows; ``all`` on the command line grants them all.
SCOPES = (
    "tickets:read",
    "tickets:write",
    "messages:write",
    "contacts:read",
    "contacts:write",
    "orders:read",
    "orders:write",
    "vouchers:read",
    "vouchers:write",
    "loyalty:read",
    "loyalty:write",
    "activities:write",
)
TOKEN_PREFIX = "rpt_"  # noqa: S105  (a public prefix, not a secret)
MIN_PASSWORD = 8


def _hash(password: str) -> str:
    # scrypt by default; tests choose a cheap method because they create many users.
    return generate_password_hash(password, method=current_app.config["RAPPORT_PASSWORD_HASH"])


def create_user(
    *, actor: Actor, email: str, name: str, password: str, role: Role = Role.AGENT
) -> User:
    """Create a sign-in; the password is stored only as a hash."""
    email = email.strip().lower()
    if "@" not in email:
        raise OperationError("an email address is needed")
    if len(password) < MIN_PASSWORD:
        raise OperationError(f"the password needs at least {MIN_PASSWORD} characters")
    if db.session.execute(select(User.id).where(func.lower(User.email) == email)).first():
        raise OperationError(f"a user with {email} exists already")
    user = User(
        email=email,
        name=name.strip() or email.split("@")[0],
        password_hash=_hash(password),
        role=role,
    )
    db.session.add(user)
    db.session.flush()
    audit.record("user.created", actor=actor, user_id=user.id, role=role.value)
    return user


def set_password(user: User, password: str, *, actor: Actor) -> None:
    """Replace a user's password."""
    if len(password) < MIN_PASSWORD:
        raise OperationError(f"the password needs at least {MIN_PASSWORD} characters")
    user.password_hash = _hash(password)
    db.session.flush()
    audit.record("user.password_changed", actor=actor, user_id=user.id)


def update_user(
    user: User,
    *,
    actor: Actor,
    role: Role | None = None,
    is_active: bool | None = None,
    is_away: bool | None = None,
    name: str | None = None,
    locale: str | None = None,
) -> User:
    """Change a user's role, status or profile; refuses before changing anything."""
    is_self = actor.kind == "user" and actor.id == user.id
    if role is not None and is_self and role is not Role.ADMIN and user.role is Role.ADMIN:
        raise OperationError("you cannot remove your own admin role")
    if is_active is False and is_self:
        raise OperationError("you cannot deactivate yourself")
    changes: dict[str, object] = {}
    if role is not None and role is not user.role:
        changes["role"] = [user.role.value, role.value]
        user.role = role
    if is_active is not None and is_active != user.is_active_user:
        changes["active"] = [user.is_active_user, is_active]
        user.is_active_user = is_active
    if is_away is not None and is_away != user.is_away:
        changes["away"] = [user.is_away, is_away]
        user.is_away = is_away
    if name is not None and name.strip() and name.strip() != user.name:
        changes["name"] = [user.name, name.strip()]
        user.name = name.strip()
    if locale is not None and (locale or None) != user.locale:
        changes["locale"] = [user.locale, locale or None]
        user.locale = locale or None
    if changes:
        db.session.flush()
        audit.record("user.updated", actor=actor, user_id=user.id, changes=changes)
    return user


def create_team(
    *, actor: Actor, name: str, members: list[User] | None = None, round_robin: bool = False
) -> Team:
    """Create a team of agents."""
    name = name.strip()
    if not name:
        raise OperationError("a team needs a name")
    if db.session.execute(select(Team.id).where(func.lower(Team.name) == name.lower())).first():
        raise OperationError(f"a team named {name} exists already")
    team = Team(name=name, members=members or [], is_round_robin=round_robin)
    db.session.add(team)
    db.session.flush()
    audit.record("team.created", actor=actor, team_id=team.id)
    return team


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(*, actor: Actor, name: str, scopes: list[str]) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the secret, which is never stored or shown again."""
    if scopes == ["all"]:
        scopes = list(SCOPES)
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise OperationError(f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    if not scopes:
        raise OperationError("a token needs at least one scope")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name.strip() or "token",
        prefix=secret[:10],
        token_hash=hash_token(secret),
        scopes=sorted(scopes),
    )
    db.session.add(token)
    db.session.flush()
    audit.record("api_token.created", actor=actor, token_id=token.id, scopes=token.scopes)
    return token, secret


def find_api_token(secret: str) -> ApiToken | None:
    """Return the live token for ``secret``, or None (unknown or revoked)."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token = db.session.execute(
        select(ApiToken).where(ApiToken.token_hash == hash_token(secret))
    ).scalar_one_or_none()
    if token is None or token.revoked_at is not None:
        return None
    return token


def revoke_api_token(token: ApiToken, *, actor: Actor) -> None:
    """Stop a token from working; it stays listed for the record."""
    token.revoked_at = utcnow()
    audit.record("api_token.revoked", actor=actor, token_id=token.id)
