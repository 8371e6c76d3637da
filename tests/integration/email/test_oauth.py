"""XOAUTH2: the built-in refresh-token provider against a local OAuth2 server, and Dovecot
checking the access tokens it hands out through that server's introspection endpoint."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from channels.email.mailboxes import access_token, check_imap, imap_settings
from channels.email.oauth import TokenUnavailable, configured_providers
from helpdesk.extensions import db
from helpdesk.models import Ticket
from tests.integration.email.conftest import SUPPORT, make_mail, reply

pytestmark = pytest.mark.slow

REFRESH_TOKEN = "rt-support-" + uuid.uuid4().hex
CLIENT_SECRET = "client-secret"


def providers(token_server: Any, **overrides: Any) -> str:
    spec = {
        "token_url": f"{token_server.url}/token",
        "client_id": token_server.client_id,
        "client_secret": CLIENT_SECRET,
        "refresh_tokens": {SUPPORT: REFRESH_TOKEN},
        **overrides,
    }
    return json.dumps({"corp": spec})


@pytest.fixture
def oauth_settings() -> dict[str, Any]:
    """Override in a test to change the provider's settings."""
    return {}


@pytest.fixture
def app_config(token_server: Any, oauth_settings: dict[str, Any]) -> dict[str, Any]:
    return {"RAPPORT_EMAIL_OAUTH_PROVIDERS": providers(token_server, **oauth_settings)}


@pytest.fixture
def tokens(token_server: Any) -> Iterator[Any]:
    token_server.clear()
    token_server.refresh_tokens = {REFRESH_TOKEN: SUPPORT}
    token_server.expires_in = 3600
    yield token_server
    token_server.expires_in = 3600


@pytest.fixture
def oauth_folder(oauth_dovecot: Any) -> Iterator[str]:
    name = f"OA{uuid.uuid4().hex[:8]}"
    client = oauth_dovecot.client(SUPPORT)
    client.create_folder(name)
    yield name
    client.delete_folder(name)
    client.logout()


@pytest.fixture
def oauth_mailbox(make_mailbox: Any, oauth_dovecot: Any, oauth_folder: str, tokens: Any) -> Any:
    return make_mailbox(
        imap_port=oauth_dovecot.port,
        imap_password=None,
        oauth_provider="corp",
        imap_folder=oauth_folder,
    )


def put(dovecot: Any, folder: str, raw: bytes) -> None:
    client = dovecot.client(SUPPORT)
    try:
        client.append(folder, raw)
    finally:
        client.logout()


# The provider on its own -------------------------------------------------------------


def test_provider_posts_a_refresh_grant_with_basic_client_auth_and_caches_the_token(app, tokens):
    first = access_token("corp", SUPPORT)
    second = access_token("corp", SUPPORT)

    assert first == second and first in tokens.issued
    (request,) = tokens.token_requests()
    assert request.form == {"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN}
    expected = base64.b64encode(f"rapport:{CLIENT_SECRET}".encode()).decode()
    assert request.authorization == f"Basic {expected}"


@pytest.mark.parametrize("oauth_settings", [{"client_auth": "post", "scope": "imap"}])
def test_provider_can_send_client_credentials_and_scope_in_the_form(app, tokens):
    access_token("corp", SUPPORT)

    (request,) = tokens.token_requests()
    assert request.authorization is None
    assert request.form == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH_TOKEN,
        "scope": "imap",
        "client_id": "rapport",
        "client_secret": CLIENT_SECRET,
    }


def test_token_is_refreshed_shortly_before_it_expires(app, tokens):
    tokens.expires_in = 600
    provider = configured_providers()["corp"]
    now = [1000.0]
    provider.clock = lambda: now[0]

    first = provider(SUPPORT)
    now[0] += 600 - 61  # a minute and a second before expiry: still good
    assert provider(SUPPORT) == first
    now[0] += 2  # inside the last minute: refreshed ahead of time
    second = provider(SUPPORT)

    assert second != first
    assert len(tokens.token_requests()) == 2


def test_a_refused_refresh_is_reported_in_words_without_any_secret(app, tokens, caplog):
    tokens.refresh_tokens = {}  # revoked at the provider
    caplog.set_level(logging.DEBUG)

    with pytest.raises(TokenUnavailable) as error:
        access_token("corp", SUPPORT)

    message = str(error.value)
    assert message == (
        "The token endpoint of 'corp' refused to refresh the access token for "
        f"'{SUPPORT}' (HTTP 400: invalid_grant, Token has been expired or revoked.)"
    )
    for secret in (REFRESH_TOKEN, CLIENT_SECRET):
        assert secret not in message and secret not in caplog.text


def test_a_username_without_a_refresh_token_is_reported_before_any_request(app, tokens):
    with pytest.raises(TokenUnavailable) as error:
        access_token("corp", "nobody@example.test")
    assert (
        str(error.value) == "XOAUTH2 provider 'corp' has no refresh token for 'nobody@example.test'"
    )
    assert tokens.token_requests() == []


def test_configured_providers_are_offered_in_the_mailbox_form(client, admin):
    page = client.get("/admin/mailboxes/new").get_data(as_text=True)
    assert '<option value="corp">XOAUTH2: corp</option>' in page


# End to end: Dovecot's oauth2 passdb asks the same server whether the token is live ------


def test_poller_logs_in_to_dovecot_with_xoauth2_and_ingests_mail(
    oauth_mailbox, oauth_dovecot, oauth_folder, poll, tokens, caplog
):
    caplog.set_level(logging.DEBUG)
    put(oauth_dovecot, oauth_folder, make_mail(subject="Signed in with a token"))

    result = poll(oauth_mailbox)

    assert result.status == "done" and result.ingested == 1, result.error
    assert db.session.scalars(select(Ticket.subject)).one() == "Signed in with a token"
    (issued,) = tokens.issued
    assert [r.form["token"] for r in tokens.introspections()] == [issued]
    log = (oauth_dovecot.directory / "dovecot.log").read_text()
    assert f"Login: user=<{SUPPORT}>, method=XOAUTH2" in log
    for secret in (issued, REFRESH_TOKEN, CLIENT_SECRET):
        assert secret not in caplog.text


def test_the_cached_token_serves_the_next_poll_without_a_new_grant(
    oauth_mailbox, oauth_dovecot, oauth_folder, poll, tokens
):
    put(oauth_dovecot, oauth_folder, make_mail(subject="One"))
    assert poll(oauth_mailbox).ingested == 1
    put(oauth_dovecot, oauth_folder, make_mail(subject="Two"))
    assert poll(oauth_mailbox).ingested == 1

    assert len(tokens.token_requests()) == 1
    assert len(tokens.introspections()) == 2


def test_a_token_the_server_stops_accepting_is_replaced_on_the_next_pass(
    oauth_mailbox, oauth_dovecot, oauth_folder, poll, tokens
):
    assert poll(oauth_mailbox).status == "done"
    tokens.revoked.update(tokens.issued)  # revoked early, before it expires

    failed = poll(oauth_mailbox)
    put(oauth_dovecot, oauth_folder, make_mail(subject="After the revocation"))
    recovered = poll(oauth_mailbox)

    assert failed.status == "error" and "AUTHENTICATIONFAILED" in failed.error
    assert recovered.status == "done" and recovered.ingested == 1, recovered.error
    assert len(tokens.token_requests()) == 2


def test_connection_check_signs_in_with_xoauth2(oauth_mailbox):
    report = check_imap(imap_settings(oauth_mailbox))

    assert report.ok, report.summary
    assert report.checks[2].step == "Login"


def test_connection_check_reports_a_revoked_refresh_token_in_words(oauth_mailbox, tokens):
    tokens.refresh_tokens = {}

    report = check_imap(imap_settings(oauth_mailbox))

    assert report.summary == (
        "IMAP: Login failed. The token endpoint of 'corp' refused to refresh the access "
        f"token for '{SUPPORT}' (HTTP 400: invalid_grant, Token has been expired or revoked.)."
    )
    assert tokens.introspections() == []  # nothing reached the mail server


# SMTP with the same token --------------------------------------------------------------


@pytest.fixture
def oauth_smtp(token_server: Any) -> Iterator[Any]:
    """aiosmtpd that accepts XOAUTH2 only with a live access token the token server issued."""
    from tests.integration.email.mailservers import start_smtp

    server = start_smtp(oauth=lambda user, token: token_server.issued.get(token) == user)
    yield server
    server.stop()


@pytest.fixture
def smtp_oauth_mailbox(oauth_mailbox: Any, oauth_smtp: Any) -> Any:
    oauth_mailbox.smtp_port = oauth_smtp.port
    db.session.commit()
    return oauth_mailbox


def test_smtp_signs_in_with_the_mailboxs_oauth_token_and_delivers_a_reply(
    smtp_oauth_mailbox, oauth_smtp, oauth_dovecot, oauth_folder, poll, tokens, agent
):
    from helpdesk.models import DeliveryStatus

    put(oauth_dovecot, oauth_folder, make_mail(subject="Reply by OAuth please"))
    assert poll(smtp_oauth_mailbox).ingested == 1
    ticket = db.session.scalars(select(Ticket)).one()

    message = reply(ticket, agent, body="Signed.")

    assert message.status is DeliveryStatus.SENT, message.error
    (got,) = oauth_smtp.received
    assert b"Signed." in got.data
    # One refresh served both IMAP and SMTP: the token is cached per username.
    assert len(tokens.token_requests()) == 1


def test_smtp_check_reports_a_revoked_token_and_fetches_a_new_one_next_time(
    smtp_oauth_mailbox, tokens
):
    from channels.email.mailboxes import check_smtp, smtp_settings

    settings = smtp_settings(smtp_oauth_mailbox)
    assert settings.username == SUPPORT and settings.oauth_provider == "corp"
    assert check_smtp(settings).ok
    tokens.issued.clear()  # the provider revoked the access token early

    refused = check_smtp(settings)
    assert not refused.ok and refused.checks[-1].step == "Login"
    again = check_smtp(settings)  # the refused token was forgotten; a fresh one works
    assert again.ok, again.summary
    assert len(tokens.token_requests()) == 2
