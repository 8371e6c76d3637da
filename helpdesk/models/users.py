"""Agents, teams and API tokens."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Column, ForeignKey, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from helpdesk.extensions import db

from ._types import JSONType, UTCDateTime, enum_type, utcnow


class Role(enum.Enum):
    """What a signed-in user may do; ordered from least to most."""

    READ_ONLY = "read_only"
    AGENT = "agent"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return [Role.READ_ONLY, Role.AGENT, Role.ADMIN].index(self)

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


team_members = Table(
    "team_members",
    db.metadata,
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[Role] = mapped_column(enum_type(Role, 16), default=Role.AGENT)
    is_active_user: Mapped[bool] = mapped_column(default=True)
    is_away: Mapped[bool] = mapped_column(default=False)
    locale: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    teams: Mapped[list[Team]] = relationship(secondary=team_members, back_populates="members")

    @property
    def is_active(self) -> bool:  # Flask-Login refuses sign-in to inactive users
        return self.is_active_user

    def can(self, role: Role) -> bool:
        return self.role.at_least(role)

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.strip() else self.email

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} {self.role.value}>"


class Team(db.Model):  # type: ignore[name-defined]
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    #: New tickets for this team go to its members in turn, skipping those away.
    is_round_robin: Mapped[bool] = mapped_column(default=False)
    last_assigned_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )

    members: Mapped[list[User]] = relationship(
        secondary=team_members, back_populates="teams", order_by="User.id"
    )


class ApiToken(db.Model):  # type: ignore[name-defined]
    """A scoped integration token; only its SHA-256 is stored, the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
