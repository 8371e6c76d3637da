"""Customers (contacts), their companies and their identities on each channel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from channels.base import IdentityKind
from helpdesk.extensions import db

from ._types import JSONType, UTCDateTime, enum_type, utcnow


class Company(db.Model):  # type: ignore[name-defined]
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    domain: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Contact(db.Model):  # type: ignore[name-defined]
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("companies.id", ondelete="SET NULL"), index=True
    )
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    locale: Mapped[str | None] = mapped_column(String(16))
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Set when this contact was merged into another; it then stays only for history.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))

    company: Mapped[Company | None] = relationship()
    identities: Mapped[list[ContactIdentity]] = relationship(
        back_populates="contact", order_by="ContactIdentity.id"
    )

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        for identity in self.identities:
            return identity.value
        return f"Contact #{self.id}"

    @property
    def first_name(self) -> str:
        return self.display_name.split()[0] if self.display_name.strip() else ""

    @property
    def email(self) -> str | None:
        return self.identity_value(IdentityKind.EMAIL)

    def identity_value(self, kind: IdentityKind) -> str | None:
        for identity in self.identities:
            if identity.kind is kind:
                return identity.value
        return None


class ContactIdentity(db.Model):  # type: ignore[name-defined]
    """An address on one channel; one identity belongs to exactly one contact."""

    __tablename__ = "contact_identities"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[IdentityKind] = mapped_column(enum_type(IdentityKind, 16))
    value: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    contact: Mapped[Contact] = relationship(back_populates="identities")


class CustomAttribute(db.Model):  # type: ignore[name-defined]
    """A typed custom field an admin defines for contacts or tickets."""

    __tablename__ = "custom_attributes"
    __table_args__ = (UniqueConstraint("applies_to", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    applies_to: Mapped[str] = mapped_column(String(16))  # "contact" or "ticket"
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(120))
    #: text, number, boolean, date or choice
    type: Mapped[str] = mapped_column(String(16), default="text")
    options: Mapped[list[str]] = mapped_column(JSONType, default=list)
