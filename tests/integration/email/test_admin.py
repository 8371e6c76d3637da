"""Mailbox admin pages and the quarantine pages: admins only, passwords never echoed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from channels.email.models import Mailbox
from helpdesk.extensions import db
from helpdesk.models import AuditEvent
from helpdesk.models.quarantine import QuarantinedItem
from tests.integration.email.conftest import PASSWORD, SUPPORT
from tests.integration.email.mailservers import free_port

pytestmark = pytest.mark.slow


def form_data(dovecot, smtp_server, folder, **overrides):
    data = {
        "name": "Support",
        "address": SUPPORT,
        "from_name": "Rapport Support",
        "team_id": "0",
        "is_active": "y",
        "imap_host": dovecot.host,
        "imap_port": str(dovecot.port),
        "imap_security": "none",
        "imap_username": SUPPORT,
        "imap_password": PASSWORD,
        "oauth_provider": "",
        "imap_folder": folder,
        "smtp_host": smtp_server.host,
        "smtp_port": str(smtp_server.port),
        "smtp_security": "none",
        "smtp_username": "",
        "smtp_password": "smtp-secret-9",
    }
    data.update(overrides)
    return data


def test_mailbox_pages_are_for_admins_only(client, make_user, login, mailbox):
    login(make_user("agent"))
    for url in ("/admin/mailboxes/", f"/admin/mailboxes/{mailbox.id}", "/admin/quarantine/"):
        assert client.get(url).status_code == 403
    assert client.post(f"/admin/mailboxes/{mailbox.id}/test").status_code == 403


def test_create_and_edit_a_mailbox_without_ever_echoing_a_password(
    client, admin, dovecot, smtp_server, folder
):
    response = client.post("/admin/mailboxes/new", data=form_data(dovecot, smtp_server, folder))
    assert response.status_code == 302, response.get_data(as_text=True)[-6000:]
    mailbox = db.session.scalars(select(Mailbox)).one()
    assert mailbox.imap_password == PASSWORD and mailbox.smtp_password == "smtp-secret-9"

    page = client.get(f"/admin/mailboxes/{mailbox.id}").get_data(as_text=True)
    assert PASSWORD not in page and "smtp-secret-9" not in page
    assert 'placeholder="unchanged"' in page
    assert PASSWORD not in repr(mailbox)

    # Saving with empty password fields keeps the stored ones.
    response = client.post(
        f"/admin/mailboxes/{mailbox.id}",
        data=form_data(
            dovecot, smtp_server, folder, name="Help", imap_password="", smtp_password=""
        ),
    )
    assert response.status_code == 302
    db.session.expire_all()
    mailbox = db.session.get(Mailbox, mailbox.id)
    assert mailbox.name == "Help"
    assert mailbox.imap_password == PASSWORD and mailbox.smtp_password == "smtp-secret-9"

    listing = client.get("/admin/mailboxes/").get_data(as_text=True)
    assert SUPPORT in listing and PASSWORD not in listing
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action.like("mailbox.%"))).all()
    assert audit and all(PASSWORD not in str(entry.data) for entry in audit)


def test_invalid_form_shows_errors_and_no_password(client, admin, dovecot, smtp_server, folder):
    response = client.post(
        "/admin/mailboxes/new",
        data=form_data(dovecot, smtp_server, folder, address="not-an-address"),
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Please correct the marked fields" in page and PASSWORD not in page


def test_test_connection_reports_success_in_words(client, admin, mailbox):
    page = client.post(f"/admin/mailboxes/{mailbox.id}/test").get_data(as_text=True)
    assert "IMAP: everything worked." in page
    assert "SMTP: everything worked." in page
    assert PASSWORD not in page


def test_test_connection_reports_a_login_failure_in_words(client, admin, make_mailbox):
    mailbox = make_mailbox(imap_password="wrong-password")
    page = client.post(f"/admin/mailboxes/{mailbox.id}/test").get_data(as_text=True)
    assert "IMAP: Login failed. The server refused the login for" in page
    assert "Check the username and password." in page
    assert "wrong-password" not in page


def test_test_connection_reports_a_missing_folder_and_a_refused_port(client, admin, make_mailbox):
    mailbox = make_mailbox(imap_folder="NoSuchFolder", smtp_port=free_port())
    page = client.post(f"/admin/mailboxes/{mailbox.id}/test").get_data(as_text=True)
    assert "IMAP: Folder failed. The folder &#39;NoSuchFolder&#39; does not exist" in page
    assert "SMTP: TCP connect failed. The connection to 127.0.0.1:" in page
    assert "was refused" in page


def test_test_connection_reports_an_unknown_host(client, admin, make_mailbox):
    mailbox = make_mailbox(imap_host="no-such-host.invalid")
    page = client.post(f"/admin/mailboxes/{mailbox.id}/test").get_data(as_text=True)
    assert "IMAP: DNS failed. The name &#39;no-such-host.invalid&#39; could not be found" in page


def test_quarantine_lists_the_error_and_reprocesses_from_the_page(client, admin, mailbox):
    from channels.email.parse import CHANNEL
    from helpdesk.quarantine import quarantine
    from tests.integration.email.conftest import make_mail

    item = quarantine(
        CHANNEL,
        f"mailbox:{mailbox.id}/uidvalidity:1/uid:7",
        make_mail(subject="Stuck mail"),
        "Traceback ...\nValueError: the database said no",
    )
    db.session.commit()
    listing = client.get("/admin/quarantine/").get_data(as_text=True)
    assert "ValueError: the database said no" in listing
    detail = client.get(f"/admin/quarantine/{item.id}").get_data(as_text=True)
    assert "Stuck mail" in detail and "Reprocess" in detail

    response = client.post(f"/admin/quarantine/{item.id}/reprocess")
    assert response.status_code == 302
    db.session.expire_all()
    item = db.session.get(QuarantinedItem, item.id)
    assert item.resolved_at is not None and item.resolution.startswith("ingested as message")
    assert (
        client.get("/admin/quarantine/").get_data(as_text=True).count("the database said no") == 0
    )
