"""Mailboxes we read and send from, the poller's state, and auto-acknowledgement records."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from channels.email.passwords import EncryptedText, is_unreadable
from helpdesk.extensions import db
from helpdesk.models import Team
from helpdesk.models._types import UTCDateTime, enum_type, utcnow


class Security(enum.Enum):
    """How the connection is protected: TLS from the start, upgraded, or not at all."""

    SSL = "ssl"
    STARTTLS = "starttls"
    NONE = "none"


class Mailbox(db.Model):  # type: ignore[name-defined]
    """One address the help desk reads over IMAP and answers from over SMTP."""

    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    address: Mapped[str] = mapped_column(String(320), unique=True)
    from_name: Mapped[str] = mapped_column(String(200), default="")
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    is_active: Mapped[bool] = mapped_column(default=True)
    auto_acknowledge: Mapped[bool] = mapped_column(default=False)

    imap_host: Mapped[str] = mapped_column(String(255), default="")
    imap_port: Mapped[int] = mapped_column(default=993)
    imap_security: Mapped[Security] = mapped_column(enum_type(Security, 16), default=Security.SSL)
    imap_username: Mapped[str] = mapped_column(String(320), default="")
    #: Encrypted at rest (see passwords.py); reads as plain text, or UnreadablePassword.
    imap_password: Mapped[str | None] = mapped_column(EncryptedText)
    #: Name of a registered XOAUTH2 token provider; used instead of the password when set.
    oauth_provider: Mapped[str | None] = mapped_column(String(64))
    imap_folder: Mapped[str] = mapped_column(String(255), default="INBOX")

    smtp_host: Mapped[str] = mapped_column(String(255), default="")
    smtp_port: Mapped[int] = mapped_column(default=587)
    smtp_security: Mapped[Security] = mapped_column(
        enum_type(Security, 16), default=Security.STARTTLS
    )
    smtp_username: Mapped[str] = mapped_column(String(320), default="")
    smtp_password: Mapped[str | None] = mapped_column(EncryptedText)

    # Poller state: advanced only after the mail it covers is committed.
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Who polls it now; taken with a conditional UPDATE and renewed while running.
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    team: Mapped[Team | None] = relationship()

    @property
    def inbox(self) -> str:
        """The inbox key tickets from this mailbox carry ("email:3")."""
        return f"email:{self.id}"

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2] or "localhost"

    @property
    def has_imap_password(self) -> bool:
        return bool(self.imap_password)

    @property
    def has_smtp_password(self) -> bool:
        return bool(self.smtp_password)

    @property
    def imap_password_unreadable(self) -> bool:
        """A password is stored, but the current secret key cannot decrypt it."""
        return is_unreadable(self.imap_password)

    @property
    def smtp_password_unreadable(self) -> bool:
        return is_unreadable(self.smtp_password)

    def __repr__(self) -> str:  # never the passwords
        return f"<Mailbox {self.id} {self.address}>"


class AutoAcknowledgement(db.Model):  # type: ignore[name-defined]
    """One automatic "we got your mail" reply; counted to rate-limit them per sender."""

    __tablename__ = "email_auto_acknowledgements"
    __table_args__ = (Index("ix_email_auto_acks_address_sent", "address", "sent_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
