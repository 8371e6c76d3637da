"""Sign in and out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.security import check_password_hash
from wtforms import BooleanField, EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from helpdesk.auth.access import public, role_required
from helpdesk.extensions import db, limiter
from helpdesk.models import Role, User

bp = Blueprint("auth", __name__)

# A constant hash to compare against when the email is unknown, so timing does not tell.
_DUMMY_HASH = "scrypt:32768:8:1$dummy$" + "0" * 128


class LoginForm(FlaskForm):
    # Not wtforms' Email(): it refuses reserved domains such as .test and .local,
    # which real installations use internally; the lookup decides anyway.
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=320)])
    password = PasswordField(_l("Password"), validators=[DataRequired()])
    remember = BooleanField(_l("Keep me signed in"))


def _safe_next(target: str | None) -> str:
    if (
        target
        and not urlsplit(target).netloc
        and target.startswith("/")
        and not target.startswith("//")
    ):
        return target
    return url_for("inbox.index")


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit("10 per minute", methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.execute(
            select(User).where(func.lower(User.email) == form.email.data.strip().lower())
        ).scalar_one_or_none()
        ok = check_password_hash(user.password_hash if user else _DUMMY_HASH, form.password.data)
        if user is not None and ok and user.is_active_user:
            login_user(user, remember=form.remember.data)
            return redirect(_safe_next(request.args.get("next")))
        flash(_l("Wrong email or password."), "error")
        return render_template("auth/login.html", form=form), 401
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@role_required(Role.READ_ONLY)
def logout():
    logout_user()
    return redirect(url_for("auth.login"))
