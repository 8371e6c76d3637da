"""Admin pages for mailboxes: list, create, edit, test the connection, poll now.

Passwords are write-only here: the form never renders a stored password, an
empty password field means "unchanged", and the page says only whether one is set.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, IntegerField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from channels.email.mailboxes import (
    ConnectionReport,
    check_imap,
    check_smtp,
    create_mailbox,
    imap_settings,
    smtp_settings,
    token_provider_names,
    update_mailbox,
)
from channels.email.models import Mailbox, Security
from helpdesk.actors import Actor
from helpdesk.auth.access import role_required
from helpdesk.extensions import db
from helpdesk.models import Role, Team
from helpdesk.operations.contacts import OperationError

bp = Blueprint("email_admin", __name__, url_prefix="/admin/mailboxes")


def _choices(pairs: list[tuple[Any, Any]]) -> list[SelectChoice]:
    return [SelectChoice(value=value, label=label) for value, label in pairs]


SECURITY_CHOICES = _choices(
    [
        (Security.SSL.value, _l("SSL/TLS")),
        (Security.STARTTLS.value, _l("STARTTLS")),
        (Security.NONE.value, _l("None (testing only)")),
    ]
)
UNCHANGED = _l("unchanged")


class MailboxForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    address = StringField(
        _l("Email address"),
        validators=[
            DataRequired(),
            Length(max=320),
            Regexp(r"^[^@\s<>]+@[^@\s<>]+$", message=_l("Enter an address like help@example.com.")),
        ],
    )
    from_name = StringField(_l("Sender name"), validators=[Length(max=200)])
    team_id = SelectField(_l("Team for new tickets"), coerce=int, default=0)
    is_active = BooleanField(_l("Active"), default=True)
    auto_acknowledge = BooleanField(_l("Acknowledge new tickets automatically"))

    imap_host = StringField(_l("IMAP server"), validators=[DataRequired(), Length(max=255)])
    imap_port = IntegerField(_l("IMAP port"), default=993, validators=[NumberRange(1, 65535)])
    imap_security = SelectField(_l("IMAP security"), choices=SECURITY_CHOICES, default="ssl")
    imap_username = StringField(_l("IMAP username"), validators=[Length(max=320)])
    imap_password = PasswordField(_l("IMAP password"), validators=[Optional(), Length(max=500)])
    clear_imap_password = BooleanField(_l("Remove the stored IMAP password"))
    oauth_provider = SelectField(_l("Sign in with"), default="")
    imap_folder = StringField(_l("Folder"), default="INBOX", validators=[Length(max=255)])

    smtp_host = StringField(_l("SMTP server"), validators=[DataRequired(), Length(max=255)])
    smtp_port = IntegerField(_l("SMTP port"), default=587, validators=[NumberRange(1, 65535)])
    smtp_security = SelectField(_l("SMTP security"), choices=SECURITY_CHOICES, default="starttls")
    smtp_username = StringField(_l("SMTP username"), validators=[Length(max=320)])
    smtp_password = PasswordField(_l("SMTP password"), validators=[Optional(), Length(max=500)])
    clear_smtp_password = BooleanField(_l("Remove the stored SMTP password"))

    def set_choices(self, mailbox: Mailbox | None) -> MailboxForm:
        teams = db.session.scalars(select(Team).order_by(Team.name)).all()
        self.team_id.choices = _choices([(0, _l("No team")), *((t.id, t.name) for t in teams)])
        self.oauth_provider.choices = _choices(
            [("", _l("Password")), *((name, f"XOAUTH2: {name}") for name in token_provider_names())]
        )
        for field, has in (
            (self.imap_password, mailbox is not None and mailbox.has_imap_password),
            (self.smtp_password, mailbox is not None and mailbox.has_smtp_password),
        ):
            field.render_kw = {
                "autocomplete": "new-password",
                "placeholder": str(UNCHANGED) if has else "",
            }
        return self

    def values(self) -> dict[str, Any]:
        return {
            "name": self.name.data.strip(),
            "address": self.address.data,
            "from_name": (self.from_name.data or "").strip(),
            "team_id": self.team_id.data or None,
            "is_active": self.is_active.data,
            "auto_acknowledge": self.auto_acknowledge.data,
            "imap_host": self.imap_host.data.strip(),
            "imap_port": self.imap_port.data,
            "imap_security": Security(self.imap_security.data),
            "imap_username": (self.imap_username.data or "").strip(),
            "imap_password": self.imap_password.data or None,
            "oauth_provider": self.oauth_provider.data or None,
            "imap_folder": (self.imap_folder.data or "INBOX").strip(),
            "smtp_host": self.smtp_host.data.strip(),
            "smtp_port": self.smtp_port.data,
            "smtp_security": Security(self.smtp_security.data),
            "smtp_username": (self.smtp_username.data or "").strip(),
            "smtp_password": self.smtp_password.data or None,
        }


def _actor() -> Actor:
    return Actor.for_user(current_user)


def _mailbox(mailbox_id: int) -> Mailbox:
    return db.session.get(Mailbox, mailbox_id) or abort(404)


@bp.get("/")
@role_required(Role.ADMIN)
def index():
    from helpdesk.quarantine import open_count

    mailboxes = db.session.scalars(select(Mailbox).order_by(Mailbox.name)).all()
    return render_template("email/mailboxes.html", mailboxes=mailboxes, quarantined=open_count())


@bp.route("/new", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def create():
    form = MailboxForm().set_choices(None)
    if form.validate_on_submit():
        try:
            mailbox = create_mailbox(actor=_actor(), **form.values())
        except OperationError as exc:
            form.address.errors.append(str(exc))
        else:
            db.session.commit()
            flash(_("Mailbox %(address)s added.", address=mailbox.address), "success")
            return redirect(url_for(".edit", mailbox_id=mailbox.id))
    return render_template("email/mailbox_form.html", form=form, mailbox=None, reports=[]), (
        400 if form.errors else 200
    )


@bp.route("/<int:mailbox_id>", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def edit(mailbox_id: int):
    mailbox = _mailbox(mailbox_id)
    form = MailboxForm(obj=mailbox if request.method == "GET" else None).set_choices(mailbox)
    if request.method == "GET":
        form.team_id.data = mailbox.team_id or 0
        form.imap_security.data = mailbox.imap_security.value
        form.smtp_security.data = mailbox.smtp_security.value
        form.oauth_provider.data = mailbox.oauth_provider or ""
        form.imap_password.data = ""
        form.smtp_password.data = ""
    if form.validate_on_submit():
        clear = tuple(
            key
            for key, flag in (
                ("imap_password", form.clear_imap_password.data),
                ("smtp_password", form.clear_smtp_password.data),
            )
            if flag
        )
        try:
            update_mailbox(mailbox, actor=_actor(), clear_passwords=clear, **form.values())
        except OperationError as exc:
            form.address.errors.append(str(exc))
        else:
            db.session.commit()
            flash(_("Mailbox saved."), "success")
            return redirect(url_for(".edit", mailbox_id=mailbox.id))
    return render_template("email/mailbox_form.html", form=form, mailbox=mailbox, reports=[]), (
        400 if form.errors else 200
    )


@bp.post("/<int:mailbox_id>/test")
@role_required(Role.ADMIN)
def test_connection(mailbox_id: int):
    mailbox = _mailbox(mailbox_id)
    imap, smtp = imap_settings(mailbox), smtp_settings(mailbox)
    db.session.commit()  # no transaction open while we wait on the network
    reports: list[ConnectionReport] = [check_imap(imap), check_smtp(smtp)]
    mailbox = _mailbox(mailbox_id)
    form = MailboxForm(obj=mailbox).set_choices(mailbox)
    form.team_id.data = mailbox.team_id or 0
    form.imap_security.data = mailbox.imap_security.value
    form.smtp_security.data = mailbox.smtp_security.value
    form.oauth_provider.data = mailbox.oauth_provider or ""
    form.imap_password.data = ""
    form.smtp_password.data = ""
    return render_template("email/mailbox_form.html", form=form, mailbox=mailbox, reports=reports)


@bp.post("/<int:mailbox_id>/poll")
@role_required(Role.ADMIN)
def poll_now(mailbox_id: int):
    from channels.email.imap import poll_mailbox_job

    mailbox = _mailbox(mailbox_id)
    db.session.commit()
    poll_mailbox_job(mailbox.id)
    flash(_("Checking %(address)s for new mail.", address=mailbox.address), "success")
    return redirect(url_for(".edit", mailbox_id=mailbox_id))
