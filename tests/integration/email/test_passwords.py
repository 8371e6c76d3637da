"""Mailbox passwords are encrypted at rest; a changed secret key asks for them again, in words."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import InvalidToken
from flask_migrate import downgrade, upgrade
from sqlalchemy import select, text

from channels.email.mailboxes import check_imap, check_smtp, imap_settings, smtp_settings
from channels.email.models import AutoAcknowledgement, Mailbox
from channels.email.passwords import decrypt_with
from helpdesk.extensions import db
from tests.integration.email.conftest import PASSWORD, SUPPORT, make_mail, reply

pytestmark = pytest.mark.slow

SMTP_PASSWORD = "smtp-secret-9"
REENTER = "the password must be re-entered."


def stored(mailbox_id: int) -> tuple[str | None, str | None]:
    """The column values as the database holds them, past the type that decrypts them."""
    row = db.session.execute(
        text("SELECT imap_password, smtp_password FROM mailboxes WHERE id = :id"),
        {"id": mailbox_id},
    ).one()
    return row[0], row[1]


def change_secret_key(app: Any, key: str = "a-new-secret-key") -> None:
    app.config["SECRET_KEY"] = key
    db.session.expire_all()


def test_passwords_are_stored_encrypted_and_read_back_as_typed(app, make_mailbox):
    mailbox = make_mailbox(smtp_password=PASSWORD)

    imap_raw, smtp_raw = stored(mailbox.id)

    assert PASSWORD not in imap_raw and PASSWORD not in smtp_raw
    assert imap_raw != smtp_raw, "the same password encrypts differently each time"
    assert decrypt_with([app.config["SECRET_KEY"]], imap_raw) == PASSWORD
    with pytest.raises(InvalidToken):
        decrypt_with(["some-other-key"], imap_raw)
    db.session.expire_all()
    mailbox = db.session.get(Mailbox, mailbox.id)
    assert (mailbox.imap_password, mailbox.smtp_password) == (PASSWORD, PASSWORD)


def test_after_the_secret_key_changes_the_poller_records_that_the_password_must_be_reentered(
    app, mailbox, append, poll, dovecot
):
    append(make_mail(subject="Waiting for a password"))
    logins_before = (dovecot.directory / "dovecot.log").read_text().count("auth failed")
    change_secret_key(app)

    result = poll(mailbox)

    assert result.status == "error" and result.ingested == 0
    assert result.error.startswith("PasswordUnreadable: The stored IMAP password can no longer")
    assert result.error.endswith(REENTER)
    db.session.refresh(mailbox)
    assert mailbox.last_error.endswith(REENTER)
    assert not mailbox.has_imap_password, "the form asks for a password instead of 'unchanged'"
    log = (dovecot.directory / "dovecot.log").read_text()
    assert log.count("auth failed") == logins_before, "no login was tried with a wrong password"


def test_the_mailbox_list_and_the_connection_check_say_the_password_must_be_reentered(
    app, client, make_user, login, make_mailbox, poll
):
    mailbox = make_mailbox(smtp_username="rapport", smtp_password=SMTP_PASSWORD)
    change_secret_key(app)
    login(make_user("admin"))  # after the change: the session cookie is signed with the new key
    poll(mailbox)

    listing = client.get("/admin/mailboxes/").get_data(as_text=True)
    page = client.post(f"/admin/mailboxes/{mailbox.id}/test").get_data(as_text=True)

    assert "Failing" in listing and REENTER in listing
    assert (
        "IMAP: Login failed. The stored IMAP password can no longer be decrypted, probably "
        "because the secret key (RAPPORT_SECRET_KEY) changed: the password must be re-entered."
    ) in page
    assert "SMTP: Login failed. The stored SMTP password can no longer be decrypted" in page


def test_connection_checks_report_unreadable_passwords_before_any_login(app, make_mailbox, smtp):
    mailbox = make_mailbox(smtp_username="rapport", smtp_password=SMTP_PASSWORD)
    change_secret_key(app)
    mailbox = db.session.get(Mailbox, mailbox.id)

    imap, smtp_report = check_imap(imap_settings(mailbox)), check_smtp(smtp_settings(mailbox))

    assert [c.step for c in imap.checks if c.ok] == ["DNS", "TCP connect"]
    assert imap.checks[-1].step == "Login" and imap.checks[-1].detail.endswith(REENTER)
    assert smtp_report.checks[-1].step == "Login"
    assert smtp_report.checks[-1].detail.endswith(REENTER)


def test_a_reply_waits_for_a_reentered_smtp_password_and_says_so(
    app, make_mailbox, append, poll, smtp, agent
):
    from helpdesk.models import DeliveryStatus, Ticket

    mailbox = make_mailbox(smtp_username="rapport", smtp_password=SMTP_PASSWORD)
    append(make_mail())
    assert poll(mailbox).ingested == 1
    change_secret_key(app)
    ticket = db.session.scalars(select(Ticket)).one()

    message = reply(ticket, agent, body="Hello")

    assert message.status is DeliveryStatus.QUEUED, "kept for a retry once the password is back"
    assert "The stored SMTP password can no longer be decrypted" in message.error
    assert smtp.received == []


def test_reentering_the_password_after_a_key_change_makes_the_mailbox_work_again(
    app, mailbox, append, poll
):
    from channels.email.mailboxes import update_mailbox
    from helpdesk.actors import Actor

    change_secret_key(app)
    assert poll(mailbox).status == "error"
    mailbox = db.session.get(Mailbox, mailbox.id)

    update_mailbox(mailbox, actor=Actor.system("test"), imap_password=PASSWORD)
    db.session.commit()
    append(make_mail(subject="Back in business"))
    result = poll(mailbox)

    assert result.status == "done" and result.ingested == 1, result.error
    assert decrypt_with(["a-new-secret-key"], stored(mailbox.id)[0]) == PASSWORD


def test_saving_other_settings_keeps_an_unreadable_password_for_when_the_old_key_returns(
    app, mailbox
):
    from channels.email.mailboxes import update_mailbox
    from helpdesk.actors import Actor

    original = stored(mailbox.id)
    change_secret_key(app)
    mailbox = db.session.get(Mailbox, mailbox.id)
    update_mailbox(mailbox, actor=Actor.system("test"), name="Renamed", imap_password=None)
    db.session.commit()

    assert stored(mailbox.id) == original
    change_secret_key(app, "test-secret")
    assert db.session.get(Mailbox, mailbox.id).imap_password == PASSWORD


def test_a_previous_key_in_secret_key_fallbacks_still_decrypts(app, mailbox, append, poll):
    old = app.config["SECRET_KEY"]
    app.config["SECRET_KEY_FALLBACKS"] = [old]
    change_secret_key(app)
    append(make_mail())

    assert poll(mailbox).ingested == 1


# The migration encrypts what was stored in plain text ----------------------------------


def test_migration_encrypts_plain_text_passwords_and_downgrade_restores_them(unmigrated_app):
    from channels.email.mailboxes import create_mailbox
    from helpdesk.actors import Actor

    upgrade(revision="ef4a8c43c119")
    mailbox = create_mailbox(actor=Actor.system("test"), name="Old", address=SUPPORT)
    db.session.flush()
    db.session.add(AutoAcknowledgement(mailbox_id=mailbox.id, address="ada@example.test"))
    db.session.commit()
    mailbox_id = mailbox.id
    db.session.execute(
        text("UPDATE mailboxes SET imap_password = 'legacy-imap', smtp_password = NULL")
    )
    db.session.commit()
    db.session.remove()

    upgrade()

    imap_raw, smtp_raw = stored(mailbox_id)
    assert smtp_raw is None
    assert imap_raw != "legacy-imap"
    assert decrypt_with([unmigrated_app.config["SECRET_KEY"]], imap_raw) == "legacy-imap"
    assert db.session.get(Mailbox, mailbox_id).imap_password == "legacy-imap"
    # The column swap on SQLite must not cascade into rows that point at the mailbox.
    assert db.session.scalars(select(AutoAcknowledgement.address)).all() == ["ada@example.test"]
    db.session.remove()

    downgrade(revision="ef4a8c43c119")

    assert stored(mailbox_id) == ("legacy-imap", None)
    db.session.remove()


def test_the_edit_page_asks_for_an_unreadable_password_to_be_entered_again(
    app, client, make_user, login, make_mailbox
):
    mailbox = make_mailbox(smtp_username="rapport", smtp_password=SMTP_PASSWORD)
    notice = "The stored password can no longer be read because the secret key changed."
    login(make_user("admin"))
    assert notice not in client.get(f"/admin/mailboxes/{mailbox.id}").get_data(as_text=True)

    change_secret_key(app)
    login(make_user("admin"))  # the session cookie is signed with the new key
    page = client.get(f"/admin/mailboxes/{mailbox.id}").get_data(as_text=True)

    assert page.count(notice) == 2  # the IMAP and the SMTP password both
