"""Fixtures for the email channel: a real Dovecot and aiosmtpd per session, mailboxes per test.

The app is the shared one with ``channels.email.init_app`` applied (as
``create_app`` will do), so the blueprint, commands and channel are registered
before the first request.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest

# Imported before the session creates the schema, so these tables exist.
import channels.email.models  # noqa: F401
import helpdesk.models.quarantine  # noqa: F401
from tests.integration.email.certificates import Certificates, make_certificates
from tests.integration.email.mailservers import (
    dovecot_available,
    start_dovecot,
    start_smtp,
    start_token_server,
)

REPO = Path(__file__).resolve().parents[3]
CHATWOOT = REPO / ".." / "shared" / "corpora" / "email" / "chatwoot"
SUPPORT = "support@example.test"
PASSWORD = "imap-secret-1"
_folders = itertools.count(1)


def _require_dovecot() -> None:
    # A missing server must not turn the email suite into a row of skips that reads as green.
    if not dovecot_available():
        pytest.fail("dovecot is missing; `make test` installs the Debian package dovecot-imapd")


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Any]:
    _require_dovecot()
    server = start_dovecot({SUPPORT: PASSWORD, "other@example.test": "other-secret"})
    yield server
    server.stop()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A private CA made for this session and a certificate for 127.0.0.1 it signed."""
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="session")
def tls_dovecot(certificates: Certificates) -> Iterator[Any]:
    """Dovecot with the private CA's certificate: STARTTLS on ``port``, implicit TLS on ``ssl_port``."""
    _require_dovecot()
    server = start_dovecot({SUPPORT: PASSWORD}, certificates=certificates)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_server() -> Iterator[Any]:
    """A local OAuth2 server: refresh-token grants for Rapport, introspection for Dovecot."""
    server = start_token_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oauth_dovecot(token_server: Any) -> Iterator[Any]:
    """Dovecot whose XOAUTH2 logins are checked against ``token_server``'s introspection."""
    _require_dovecot()
    server = start_dovecot(
        {SUPPORT: PASSWORD}, oauth2_introspection_url=f"{token_server.url}/introspect"
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[Any]:
    server = start_smtp()
    yield server
    server.stop()


@pytest.fixture
def app(app: Any) -> Any:
    from channels.email import init_app

    init_app(app)
    return app


@pytest.fixture
def smtp(smtp_server: Any) -> Any:
    smtp_server.clear()
    return smtp_server


@pytest.fixture
def imap(dovecot: Any) -> Iterator[Any]:
    """A connection of the test itself, for APPEND and for looking at flags."""
    client = dovecot.client(SUPPORT)
    yield client
    client.logout()


@pytest.fixture
def folder(imap: Any) -> Iterator[str]:
    """A fresh folder per test, so tests never see each other's mail."""
    name = f"T{next(_folders)}x{uuid.uuid4().hex[:6]}"
    imap.create_folder(name)
    yield name
    imap.delete_folder(name)


@pytest.fixture
def make_mailbox(app: Any, dovecot: Any, smtp_server: Any, folder: str) -> Callable[..., Any]:
    from channels.email.mailboxes import create_mailbox
    from channels.email.models import Security
    from helpdesk.actors import Actor
    from helpdesk.extensions import db

    def make(**kw: Any) -> Any:
        values: dict[str, Any] = {
            "name": "Support",
            "address": SUPPORT,
            "from_name": "Rapport Support",
            "imap_host": dovecot.host,
            "imap_port": dovecot.port,
            "imap_security": Security.NONE,
            "imap_username": SUPPORT,
            "imap_password": PASSWORD,
            "imap_folder": folder,
            "smtp_host": smtp_server.host,
            "smtp_port": smtp_server.port,
            "smtp_security": Security.NONE,
            **kw,
        }
        mailbox = create_mailbox(actor=Actor.system("test"), **values)
        db.session.commit()
        return mailbox

    return make


@pytest.fixture
def mailbox(make_mailbox: Callable[..., Any]) -> Any:
    return make_mailbox()


@pytest.fixture
def append(imap: Any, folder: str) -> Callable[..., Any]:
    def put(*raws: bytes, into: str | None = None) -> None:
        for raw in raws:
            imap.append(into or folder, raw)

    return put


@pytest.fixture
def poll(app: Any) -> Callable[..., Any]:
    """Run one poller pass the way a worker would: no transaction left open here."""
    from channels.email.imap import poll_mailbox
    from helpdesk.extensions import db

    def run(mailbox: Any, **kw: Any) -> Any:
        mailbox_id = mailbox if isinstance(mailbox, int) else mailbox.id
        db.session.commit()
        result = poll_mailbox(mailbox_id, **kw)
        db.session.expire_all()
        return result

    return run


@pytest.fixture
def admin(make_user: Callable[..., Any], login: Callable[..., Any]) -> Any:
    user = make_user("admin", name="Alex Admin")
    login(user)
    return user


@pytest.fixture
def agent(app: Any) -> Any:
    from helpdesk.extensions import db
    from helpdesk.models import Role, User

    # No sign-in needed here, so skip the (deliberately slow) password hashing.
    user = User(email="sam@example.test", name="Sam Support", password_hash="!", role=Role.AGENT)
    db.session.add(user)
    db.session.commit()
    return user


def reply(ticket: Any, agent: Any, body: str = "Your parcel is on its way.", **kw: Any) -> Any:
    """Reply as ``agent`` and commit, so the message is sent; return it as stored."""
    from helpdesk.actors import Actor
    from helpdesk.extensions import db
    from helpdesk.operations.messages import reply_to_ticket

    message = reply_to_ticket(ticket, actor=Actor.for_user(agent), author=agent, body=body, **kw)
    db.session.commit()
    db.session.refresh(message)
    return message


def make_mail(
    *,
    sender: str = "Ada Lovelace <ada@example.test>",
    to: str = SUPPORT,
    subject: str = "Parcel missing",
    body: str = "Hello, my parcel has not arrived.",
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
    html: str | None = None,
) -> bytes:
    """A plain mail as bytes, the way a mail client would write it."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = format_datetime(datetime.now().astimezone())
    mail["Message-ID"] = message_id or make_msgid(domain="client.example")
    for key, value in (headers or {}).items():
        mail[key] = value
    mail.set_content(body)
    if html:
        mail.add_alternative(html, subtype="html")
    return mail.as_bytes()
