"""Mailbox operations: create and edit, choose one, lease it to one poller, test connections.

Passwords are write-only: they are stored (encrypted, see passwords.py), used
to connect, and never shown, logged or returned. The connection settings handed to IMAP and SMTP code are
plain snapshots (:class:`ImapSettings`, :class:`SmtpSettings`) so no network
call ever runs with a database object, or a transaction, in hand.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update

from channels.email import oauth
from channels.email.models import Mailbox, Security
from channels.email.passwords import PasswordUnreadable, is_unreadable
from channels.email.tls import tls_context
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import utcnow
from helpdesk.operations import audit
from helpdesk.operations.contacts import OperationError

#: Editable fields; passwords are handled apart (empty means "unchanged").
FIELDS = (
    "name",
    "address",
    "from_name",
    "team_id",
    "is_active",
    "auto_acknowledge",
    "imap_host",
    "imap_port",
    "imap_security",
    "imap_username",
    "oauth_provider",
    "imap_folder",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_username",
)
SECRET_FIELDS = ("imap_password", "smtp_password")
CONNECT_TIMEOUT = 15.0


# Settings snapshots ------------------------------------------------------------


@dataclass(frozen=True)
class ImapSettings:
    """What the poller needs to reach a mailbox; the password never shows in repr."""

    mailbox_id: int
    address: str
    host: str
    port: int
    security: Security
    username: str
    folder: str
    password: str | None = field(default=None, repr=False)
    oauth_provider: str | None = None
    #: The stored password exists but the current secret key cannot decrypt it.
    password_unreadable: bool = False

    def login_password(self) -> str:
        """The password to log in with; raises when it has to be re-entered first."""
        if self.password_unreadable:
            raise PasswordUnreadable("IMAP")
        return self.password or ""


@dataclass(frozen=True)
class SmtpSettings:
    """What sending needs; the password never shows in repr."""

    host: str
    port: int
    security: Security
    username: str = ""
    password: str | None = field(default=None, repr=False)
    password_unreadable: bool = False
    #: The mailbox's XOAUTH2 provider: SMTP signs in with the same token as IMAP.
    oauth_provider: str | None = None

    def login_password(self) -> str:
        """The password to log in with; raises when it has to be re-entered first."""
        if self.password_unreadable:
            raise PasswordUnreadable("SMTP")
        return self.password or ""


def imap_settings(mailbox: Mailbox) -> ImapSettings:
    return ImapSettings(
        mailbox_id=mailbox.id,
        address=mailbox.address,
        host=mailbox.imap_host,
        port=mailbox.imap_port,
        security=mailbox.imap_security,
        username=mailbox.imap_username or mailbox.address,
        folder=mailbox.imap_folder or "INBOX",
        password=mailbox.imap_password,
        oauth_provider=mailbox.oauth_provider or None,
        password_unreadable=is_unreadable(mailbox.imap_password),
    )


def smtp_settings(mailbox: Mailbox) -> SmtpSettings:
    oauth_provider = mailbox.oauth_provider or None
    username = mailbox.smtp_username or ""
    if oauth_provider and not username:  # the token belongs to the mailbox's own login
        username = mailbox.imap_username or mailbox.address
    return SmtpSettings(
        host=mailbox.smtp_host,
        port=mailbox.smtp_port,
        security=mailbox.smtp_security,
        username=username,
        password=mailbox.smtp_password,
        password_unreadable=is_unreadable(mailbox.smtp_password),
        oauth_provider=oauth_provider,
    )


# XOAUTH2 -------------------------------------------------------------------------

#: A token provider returns a fresh OAuth2 access token for a username.
TokenProvider = Callable[[str], str]
_token_providers: dict[str, TokenProvider] = {}


def register_token_provider(name: str, provider: TokenProvider) -> TokenProvider:
    """Make an XOAUTH2 access-token source available to mailboxes by name."""
    _token_providers[name] = provider
    return provider


def token_provider_names() -> list[str]:
    """Providers registered in code and those configured for the current app."""
    return sorted(set(_token_providers) | set(oauth.configured_providers()))


def access_token(provider: str, username: str) -> str:
    """A live access token for ``username``; raises OperationError in words when none."""
    source = _token_providers.get(provider) or oauth.configured_providers().get(provider)
    if source is None:
        raise OperationError(f"no XOAUTH2 token provider named '{provider}' is registered")
    return source(username)


def forget_access_token(provider: str, username: str) -> None:
    """Drop a cached token the server refused, so the next login fetches a fresh one."""
    source = _token_providers.get(provider) or oauth.configured_providers().get(provider)
    forget = getattr(source, "forget", None)
    if forget is not None:
        forget(username)


# Create, edit, choose ----------------------------------------------------------


def _normalise(values: dict[str, Any]) -> dict[str, Any]:
    clean = {key: values[key] for key in FIELDS if key in values}
    if "address" in clean:
        clean["address"] = (clean["address"] or "").strip().lower()
        if "@" not in clean["address"]:
            raise OperationError("the mailbox address must look like name@example.com")
    for key in ("imap_security", "smtp_security"):
        if key in clean and not isinstance(clean[key], Security):
            clean[key] = Security(clean[key])
    if "oauth_provider" in clean:
        clean["oauth_provider"] = clean["oauth_provider"] or None
    if "team_id" in clean:
        clean["team_id"] = clean["team_id"] or None
    return clean


def _address_taken(address: str, mailbox_id: int | None) -> bool:
    query = select(Mailbox.id).where(func.lower(Mailbox.address) == address)
    if mailbox_id is not None:
        query = query.where(Mailbox.id != mailbox_id)
    return db.session.execute(query).first() is not None


def create_mailbox(*, actor: Actor, **values: Any) -> Mailbox:
    """Add a mailbox; ``imap_password``/``smtp_password`` are stored, never echoed."""
    clean = _normalise(values)
    if _address_taken(clean["address"], None):
        raise OperationError(f"a mailbox for {clean['address']} exists already")
    mailbox = Mailbox(**clean)
    for key in SECRET_FIELDS:
        if values.get(key):
            setattr(mailbox, key, values[key])
    db.session.add(mailbox)
    db.session.flush()
    audit.record("mailbox.created", actor=actor, mailbox_id=mailbox.id, address=mailbox.address)
    return mailbox


def update_mailbox(
    mailbox: Mailbox, *, actor: Actor, clear_passwords: tuple[str, ...] = (), **values: Any
) -> Mailbox:
    """Change settings; an empty password keeps the stored one (the form shows "unchanged")."""
    clean = _normalise(values)
    if "address" in clean and _address_taken(clean["address"], mailbox.id):
        raise OperationError(f"a mailbox for {clean['address']} exists already")
    changed = sorted(k for k, v in clean.items() if getattr(mailbox, k) != v)
    for key, value in clean.items():
        setattr(mailbox, key, value)
    for key in SECRET_FIELDS:
        if values.get(key):
            setattr(mailbox, key, values[key])
            changed.append(key)
        elif key in clear_passwords:
            setattr(mailbox, key, None)
            changed.append(key)
    if {"imap_host", "imap_username", "imap_folder"} & set(changed):
        # Another server or folder: its UIDs mean nothing here; Message-ID dedupe
        # keeps the re-scan from storing anything twice.
        mailbox.uidvalidity = None
        mailbox.last_uid = 0
    mailbox.updated_at = utcnow()
    db.session.flush()
    # Names of changed fields only; never values, so no password reaches the audit trail.
    audit.record("mailbox.updated", actor=actor, mailbox_id=mailbox.id, changed=changed)
    return mailbox


def active_mailboxes() -> list[Mailbox]:
    return list(
        db.session.scalars(select(Mailbox).where(Mailbox.is_active.is_(True)).order_by(Mailbox.id))
    )


def mailbox_for_inbox(inbox: str | None) -> Mailbox | None:
    """The mailbox an inbox key names ("email:3"), else the first active one."""
    if inbox and inbox.startswith("email:"):
        try:
            mailbox = db.session.get(Mailbox, int(inbox.split(":", 1)[1]))
        except ValueError:
            mailbox = None
        if mailbox is not None:
            return mailbox
    return db.session.scalars(
        select(Mailbox).where(Mailbox.is_active.is_(True)).order_by(Mailbox.id).limit(1)
    ).first()


def own_addresses() -> set[str]:
    """Every address we send from; mail from these is our own and never a customer's."""
    return {a.lower() for a in db.session.scalars(select(Mailbox.address))}


def mailbox_for_recipients(addresses: list[str]) -> Mailbox | None:
    """The first mailbox whose address is among ``addresses`` (any case)."""
    wanted = [a.lower() for a in addresses if a]
    if not wanted:
        return None
    found = {
        m.address.lower(): m
        for m in db.session.scalars(select(Mailbox).where(func.lower(Mailbox.address).in_(wanted)))
    }
    for address in wanted:
        if address in found:
            return found[address]
    return None


# Lease: one poller per mailbox ------------------------------------------------------


def acquire_lease(mailbox_id: int, owner: str, seconds: float) -> bool:
    """Take or renew the poller lease; False when another owner holds a live one.

    One conditional UPDATE, so two pollers racing for it cannot both win. The
    caller commits.
    """
    now = utcnow()
    claimed = db.session.execute(
        update(Mailbox)
        .where(
            Mailbox.id == mailbox_id,
            Mailbox.is_active.is_(True),
            or_(
                Mailbox.lease_until.is_(None),
                Mailbox.lease_until < now,
                Mailbox.lease_owner == owner,
            ),
        )
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return bool(claimed)


def release_lease(mailbox_id: int, owner: str) -> None:
    """Give the lease up (only if we still hold it). The caller commits."""
    db.session.execute(
        update(Mailbox)
        .where(Mailbox.id == mailbox_id, Mailbox.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )


# Test connection -------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One step of a connection test, in words an admin can act on."""

    step: str
    ok: bool
    detail: str


@dataclass
class ConnectionReport:
    service: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def summary(self) -> str:
        failed = next((c for c in self.checks if not c.ok), None)
        if failed is None:
            return f"{self.service}: everything worked."
        return f"{self.service}: {failed.step} failed. {failed.detail}"

    def add(self, step: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(step, ok, detail))
        return ok


def _check_network(report: ConnectionReport, host: str, port: int) -> bool:
    if not host:
        return report.add("DNS", False, "No server name is set.")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return report.add("DNS", False, f"The name '{host}' could not be found ({reason}).")
    addresses = sorted({str(info[4][0]) for info in infos})
    report.add("DNS", True, f"'{host}' is {', '.join(addresses[:3])}.")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except ConnectionRefusedError:
        return report.add(
            "TCP connect",
            False,
            f"The connection to {host}:{port} was refused: nothing listens on that port, "
            "or a firewall rejects it. Check the port number.",
        )
    except TimeoutError:
        return report.add(
            "TCP connect",
            False,
            f"Connecting to {host}:{port} timed out after {CONNECT_TIMEOUT:.0f} s; "
            "a firewall may be dropping the traffic.",
        )
    except OSError as exc:
        return report.add("TCP connect", False, f"Could not connect to {host}:{port}: {exc}.")
    return report.add("TCP connect", True, f"{host}:{port} accepts connections.")


def _tls_failure(exc: Exception, security: Security) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"The server's certificate could not be verified: {exc.verify_message}."
    hint = (
        " Is this the SSL port (993 for IMAP, 465 for SMTP), or should security be STARTTLS?"
        if security is Security.SSL
        else ""
    )
    return f"The TLS handshake failed: {exc}.{hint}"


def _server_text(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, smtplib.SMTPResponseException):
        raw = exc.smtp_error
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        text = f"{exc.smtp_code} {text}"
    return text.strip().strip("b'\"") or exc.__class__.__name__


def check_imap(settings: ImapSettings) -> ConnectionReport:
    """Connect, log in and open the folder, reporting the first failing step in words."""
    from imapclient import IMAPClient
    from imapclient.exceptions import LoginError

    report = ConnectionReport("IMAP")
    if not _check_network(report, settings.host, settings.port):
        return report
    try:
        context = tls_context() if settings.security is not Security.NONE else None
        client = IMAPClient(
            settings.host,
            port=settings.port,
            ssl=settings.security is Security.SSL,
            ssl_context=context,
            timeout=CONNECT_TIMEOUT,
        )
        if settings.security is Security.STARTTLS:
            client.starttls(context)
    except ssl.SSLError as exc:
        report.add("TLS", False, _tls_failure(exc, settings.security))
        return report
    except Exception as exc:
        if settings.security is Security.STARTTLS and "STARTTLS" in str(exc).upper():
            report.add("TLS", False, f"The server does not offer STARTTLS ({exc}).")
        else:
            report.add("Greeting", False, f"The server did not answer like IMAP: {exc}.")
        return report
    if settings.security is not Security.NONE:
        report.add("TLS", True, "The connection is encrypted.")
    try:
        try:
            if settings.oauth_provider:
                token = access_token(settings.oauth_provider, settings.username)
                try:
                    client.oauth2_login(settings.username, token)
                except LoginError:
                    forget_access_token(settings.oauth_provider, settings.username)
                    raise
            else:
                client.login(settings.username, settings.login_password())
        except PasswordUnreadable as exc:
            report.add("Login", False, str(exc))
            return report
        except oauth.TokenUnavailable as exc:
            report.add("Login", False, f"{exc}.")
            return report
        except (LoginError, OperationError) as exc:
            report.add(
                "Login",
                False,
                f"The server refused the login for '{settings.username}': {_server_text(exc)}. "
                "Check the username and password.",
            )
            return report
        except Exception as exc:
            report.add("Login", False, f"Logging in as '{settings.username}' failed: {exc}.")
            return report
        report.add("Login", True, f"Signed in as '{settings.username}'.")
        try:
            exists = client.folder_exists(settings.folder)
        except Exception as exc:
            exists = False
            detail = str(exc)
        else:
            detail = ""
        if not exists:
            try:
                names = ", ".join(f[2] for f in client.list_folders()[:15])
            except Exception:
                names = "unknown"
            report.add(
                "Folder",
                False,
                f"The folder '{settings.folder}' does not exist{f' ({detail})' if detail else ''}."
                f" Folders on the server: {names}.",
            )
            return report
        selected = client.select_folder(settings.folder, readonly=True)
        count = selected.get(b"EXISTS", 0)
        idle = "supports IDLE" if client.has_capability("IDLE") else "has no IDLE; we will poll"
        report.add(
            "Folder", True, f"'{settings.folder}' holds {count} messages; the server {idle}."
        )
    finally:
        with contextlib.suppress(Exception):  # the test is over either way
            client.logout()
    return report


def check_smtp(settings: SmtpSettings) -> ConnectionReport:
    """Connect, secure and log in to the SMTP server, reporting the first failing step."""
    report = ConnectionReport("SMTP")
    if not _check_network(report, settings.host, settings.port):
        return report
    try:
        smtp = open_smtp(settings)
    except ssl.SSLError as exc:
        report.add("TLS", False, _tls_failure(exc, settings.security))
        return report
    except smtplib.SMTPNotSupportedError:
        report.add("TLS", False, "The server does not offer STARTTLS; choose SSL or none.")
        return report
    except smtplib.SMTPAuthenticationError as exc:
        report.add(
            "Login",
            False,
            f"The server refused the login for '{settings.username}': {_server_text(exc)}. "
            "Check the username and password.",
        )
        return report
    except (SmtpLoginUnsupported, PasswordUnreadable) as exc:
        report.add("Login", False, str(exc))
        return report
    except oauth.TokenUnavailable as exc:
        report.add("Login", False, f"{exc}.")
        return report
    except (smtplib.SMTPException, OSError) as exc:
        report.add("Greeting", False, f"The server did not answer like SMTP: {exc}.")
        return report
    try:
        if settings.security is not Security.NONE:
            report.add("TLS", True, "The connection is encrypted.")
        if settings.username:
            report.add("Login", True, f"Signed in as '{settings.username}'.")
        else:
            report.add("Login", True, "No username set; sending without login.")
    finally:
        with contextlib.suppress(Exception):  # the test is over either way
            smtp.quit()
    return report


def _login_xoauth2(smtp: smtplib.SMTP, provider: str, username: str) -> None:
    """SASL XOAUTH2 (Google, Microsoft 365): an access token instead of a password."""
    initial = f"user={username}\x01auth=Bearer {access_token(provider, username)}\x01\x01"

    def respond(challenge: bytes | None = None) -> str:
        # A refusal comes as a challenge carrying a JSON error; the empty answer
        # ends the exchange so the server sends its final 535.
        return "" if challenge is not None else initial

    try:
        smtp.auth("XOAUTH2", respond)
    except smtplib.SMTPAuthenticationError:
        forget_access_token(provider, username)  # revoked early, perhaps: fetch anew next time
        raise


class SmtpLoginUnsupported(smtplib.SMTPException):
    """A username is configured but the server offers no AUTH."""


def open_smtp(settings: SmtpSettings, timeout: float = 30.0) -> smtplib.SMTP:
    """Connect, secure and log in as the settings say; the caller quits."""
    # Checked before connecting: a password that must be re-entered is not worth a connection.
    password = (
        settings.login_password() if settings.username and not settings.oauth_provider else ""
    )
    smtp: smtplib.SMTP
    if settings.security is Security.SSL:
        smtp = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=timeout, context=tls_context()
        )
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
    try:
        smtp.ehlo()
        if settings.security is Security.STARTTLS:
            smtp.starttls(context=tls_context())
            smtp.ehlo()
        if settings.username:
            if not smtp.has_extn("auth"):
                raise SmtpLoginUnsupported(
                    f"A username is set, but {settings.host} offers no login (AUTH)"
                    + ("" if settings.security is not Security.NONE else " without TLS")
                    + ". Leave the SMTP username empty, or enable TLS."
                )
            if settings.oauth_provider:
                _login_xoauth2(smtp, settings.oauth_provider, settings.username)
            else:
                smtp.login(settings.username, password)
    except BaseException:
        smtp.close()
        raise
    return smtp
