"""TLS against real servers: Dovecot and aiosmtpd with a certificate from a private CA.

The CA is made by the test session. Trusted through ``RAPPORT_EMAIL_CA_FILE``
the servers verify, hostname checks included; not trusted, every connection is
refused and the connection check says why in words.
"""

from __future__ import annotations

import email
import uuid
from collections.abc import Iterator
from email import policy
from typing import Any

import pytest
from sqlalchemy import select

from channels.email.mailboxes import (
    check_imap,
    check_smtp,
    imap_settings,
    smtp_settings,
)
from channels.email.models import Security
from helpdesk.extensions import db
from helpdesk.models import DeliveryStatus, Ticket
from tests.integration.email.conftest import PASSWORD, SUPPORT, make_mail, reply
from tests.integration.email.mailservers import start_smtp

pytestmark = pytest.mark.slow

SMTP_USER = "rapport-smtp"
SMTP_PASSWORD = "smtp-tls-secret"
UNTRUSTED = (
    "The server's certificate could not be verified: unable to get local issuer certificate."
)


@pytest.fixture
def app_config(certificates: Any) -> dict[str, Any]:
    return {"RAPPORT_EMAIL_CA_FILE": str(certificates.ca_file)}


@pytest.fixture
def distrust_the_ca(app: Any) -> None:
    """As on a machine where nobody told Rapport about the private CA."""
    app.config["RAPPORT_EMAIL_CA_FILE"] = None


@pytest.fixture
def tls_folder(tls_dovecot: Any) -> Iterator[str]:
    name = f"TLS{uuid.uuid4().hex[:8]}"
    client = tls_dovecot.client(SUPPORT)  # plaintext login: the test's own side door
    client.create_folder(name)
    yield name
    client.delete_folder(name)
    client.logout()


@pytest.fixture
def tls_append(tls_dovecot: Any, tls_folder: str) -> Any:
    def put(raw: bytes) -> None:
        client = tls_dovecot.client(SUPPORT)
        try:
            client.append(tls_folder, raw)
        finally:
            client.logout()

    return put


@pytest.fixture(params=[Security.SSL, Security.STARTTLS], ids=["implicit-tls", "starttls"])
def imap_security(request: pytest.FixtureRequest) -> Security:
    return request.param


@pytest.fixture
def tls_mailbox(
    make_mailbox: Any, tls_dovecot: Any, tls_folder: str, imap_security: Security
) -> Any:
    port = tls_dovecot.ssl_port if imap_security is Security.SSL else tls_dovecot.port
    return make_mailbox(imap_port=port, imap_security=imap_security, imap_folder=tls_folder)


@pytest.fixture(scope="module", params=["ssl", "starttls"])
def tls_smtp(request: pytest.FixtureRequest, certificates: Any) -> Iterator[Any]:
    server = start_smtp(
        tls=request.param, certificates=certificates, logins={SMTP_USER: SMTP_PASSWORD}
    )
    server.security = Security.SSL if request.param == "ssl" else Security.STARTTLS
    yield server
    server.stop()


def test_poller_reads_mail_over_tls_when_the_private_ca_is_trusted(
    tls_mailbox, tls_append, poll, tls_dovecot
):
    tls_append(make_mail(subject="Sent over TLS"))

    result = poll(tls_mailbox)

    assert result.status == "done" and result.ingested == 1, result.error
    assert db.session.scalars(select(Ticket.subject)).one() == "Sent over TLS"
    log = (tls_dovecot.directory / "dovecot.log").read_text()
    assert f"Login: user=<{SUPPORT}>, method=PLAIN" in log and ", TLS, session=" in log


def test_connection_check_passes_over_tls_when_the_private_ca_is_trusted(tls_mailbox):
    report = check_imap(imap_settings(tls_mailbox))

    assert report.ok, report.summary
    assert [c.step for c in report.checks] == ["DNS", "TCP connect", "TLS", "Login", "Folder"]
    assert report.checks[2].detail == "The connection is encrypted."


def test_connection_check_reports_an_untrusted_certificate_in_words(tls_mailbox, distrust_the_ca):
    report = check_imap(imap_settings(tls_mailbox))

    assert not report.ok
    assert report.summary == f"IMAP: TLS failed. {UNTRUSTED}"
    assert "Login" not in [
        c.step for c in report.checks
    ]  # no password sent to an unverified server


def test_test_connection_page_shows_the_certificate_failure(
    client, admin, tls_mailbox, distrust_the_ca
):
    page = client.post(f"/admin/mailboxes/{tls_mailbox.id}/test").get_data(as_text=True)

    assert "IMAP: TLS failed. The server&#39;s certificate could not be verified" in page
    assert PASSWORD not in page


def test_poller_refuses_an_untrusted_certificate_and_records_why(
    tls_mailbox, tls_append, poll, distrust_the_ca
):
    tls_append(make_mail(subject="Never read"))

    result = poll(tls_mailbox)

    assert result.status == "error" and result.ingested == 0
    assert "CERTIFICATE_VERIFY_FAILED" in result.error
    db.session.refresh(tls_mailbox)
    assert "certificate verify failed" in tls_mailbox.last_error
    assert db.session.scalars(select(Ticket)).all() == []


def test_a_certificate_for_another_name_is_refused_even_from_a_trusted_ca(tls_mailbox):
    # The certificate names 127.0.0.1 only; "localhost" reaches the same server.
    from dataclasses import replace

    report = check_imap(replace(imap_settings(tls_mailbox), host="localhost"))

    assert report.summary.startswith(
        "IMAP: TLS failed. The server's certificate could not be verified: Hostname mismatch"
    )


# SMTP ---------------------------------------------------------------------------------


@pytest.fixture
def smtp_tls_mailbox(make_mailbox: Any, tls_smtp: Any) -> Any:
    return make_mailbox(
        smtp_port=tls_smtp.port,
        smtp_security=tls_smtp.security,
        smtp_username=SMTP_USER,
        smtp_password=SMTP_PASSWORD,
    )


def test_smtp_check_signs_in_over_tls_when_the_private_ca_is_trusted(smtp_tls_mailbox, tls_smtp):
    report = check_smtp(smtp_settings(smtp_tls_mailbox))

    assert report.ok, report.summary
    assert [c.step for c in report.checks] == ["DNS", "TCP connect", "TLS", "Login"]
    assert report.checks[-1].detail == f"Signed in as '{SMTP_USER}'."


def test_smtp_check_reports_an_untrusted_certificate_in_words(smtp_tls_mailbox, distrust_the_ca):
    report = check_smtp(smtp_settings(smtp_tls_mailbox))

    assert report.summary == f"SMTP: TLS failed. {UNTRUSTED}"


def test_reply_is_delivered_over_tls_with_login(smtp_tls_mailbox, tls_smtp, append, poll, agent):
    tls_smtp.clear()
    append(make_mail(subject="Reply over TLS please"))
    assert poll(smtp_tls_mailbox).ingested == 1
    ticket = db.session.scalars(select(Ticket)).one()

    message = reply(ticket, agent, body="Encrypted all the way.")

    assert message.status is DeliveryStatus.SENT, message.error
    (got,) = tls_smtp.received
    mail = email.message_from_bytes(got.data, policy=policy.default)
    assert mail["From"] == f"Rapport Support <{SUPPORT}>"
    assert "Encrypted all the way." in mail.get_body(("plain",)).get_content()


def test_smtp_check_explains_that_the_server_offers_login_only_after_starttls(
    make_mailbox, certificates
):
    server = start_smtp(
        tls="starttls", certificates=certificates, logins={SMTP_USER: SMTP_PASSWORD}
    )
    try:
        mailbox = make_mailbox(
            smtp_port=server.port,
            smtp_security=Security.NONE,
            smtp_username=SMTP_USER,
            smtp_password=SMTP_PASSWORD,
        )
        report = check_smtp(smtp_settings(mailbox))
    finally:
        server.stop()

    assert report.summary == (
        "SMTP: Login failed. A username is set, but 127.0.0.1 offers no login (AUTH) "
        "without TLS. Leave the SMTP username empty, or enable TLS."
    )
