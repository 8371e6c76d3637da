"""Admin pages: users, teams, canned responses, custom attributes, API tokens, audit log.

Admins only. Each view parses a form, calls one operation, commits, flashes and redirects;
on a validation error it renders the page again with the errors beside the fields.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from helpdesk.actors import Actor
from helpdesk.admin import forms
from helpdesk.admin.operations import (
    PLACEHOLDERS,
    create_canned_response,
    create_custom_attribute,
    delete_canned_response,
    delete_custom_attribute,
    update_canned_response,
    update_custom_attribute,
    update_team,
)
from helpdesk.auth.access import role_required
from helpdesk.crm.forms import ConfirmForm
from helpdesk.extensions import db
from helpdesk.models import (
    ApiToken,
    AuditEvent,
    CannedResponse,
    CustomAttribute,
    Role,
    Team,
    User,
)
from helpdesk.operations.contacts import OperationError
from helpdesk.operations.users import (
    create_api_token,
    create_team,
    create_user,
    revoke_api_token,
    set_password,
    update_user,
)

bp = Blueprint("admin", __name__, url_prefix="/admin")

AUDIT_PER_PAGE = 50


def _actor() -> Actor:
    return Actor.for_user(current_user)


def _get(model: Any, object_id: int) -> Any:
    found = db.session.get(model, object_id)
    if found is None:
        abort(404)
    return found


@bp.context_processor
def _template_names() -> dict[str, Any]:
    return {"Role": Role, "role_labels": forms.ROLE_LABELS}


@bp.route("/")
@role_required(Role.ADMIN)
def index() -> ResponseReturnValue:
    def count(model: Any) -> int:
        return db.session.scalar(select(func.count()).select_from(model)) or 0

    counts = {
        "users": count(User),
        "teams": count(Team),
        "canned": count(CannedResponse),
        "attributes": count(CustomAttribute),
        "tokens": db.session.scalar(
            select(func.count(ApiToken.id)).where(ApiToken.revoked_at.is_(None))
        )
        or 0,
        "audit": count(AuditEvent),
    }
    return render_template("admin/index.html", counts=counts)


# ------------------------------------------------------------------------ users


def _users() -> list[User]:
    return list(
        db.session.scalars(
            select(User).options(selectinload(User.teams)).order_by(func.lower(User.name), User.id)
        )
    )


@bp.route("/users", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def users() -> ResponseReturnValue:
    form = forms.UserCreateForm()
    if form.validate_on_submit():
        try:
            user = create_user(
                actor=_actor(),
                email=form.email.data,
                name=form.name.data,
                password=form.password.data,
                role=Role(form.role.data),
            )
        except OperationError as exc:
            db.session.rollback()
            form.email.errors = [*form.email.errors, str(exc)]
        else:
            db.session.commit()
            flash(_("%(name)s can now sign in.", name=user.name), "success")
            return redirect(url_for(".users"))
    status = 422 if form.is_submitted() else 200
    return render_template("admin/users.html", users=_users(), form=form), status


def _render_user(user: User, status: int = 200, **forms_: Any) -> ResponseReturnValue:
    update_form = forms_.get("update_form") or forms.UserUpdateForm(
        formdata=None,
        name=user.name,
        role=user.role.value,
        is_active=user.is_active_user,
        is_away=user.is_away,
    )
    password_form = forms_.get("password_form") or forms.PasswordForm(formdata=None)
    return render_template(
        "admin/user.html", user=user, update_form=update_form, password_form=password_form
    ), status


@bp.route("/users/<int:user_id>")
@role_required(Role.ADMIN)
def user(user_id: int) -> ResponseReturnValue:
    return _render_user(_get(User, user_id))


@bp.route("/users/<int:user_id>/update", methods=["POST"])
@role_required(Role.ADMIN)
def update_user_view(user_id: int) -> ResponseReturnValue:
    user = _get(User, user_id)
    form = forms.UserUpdateForm()
    if not form.validate_on_submit():
        return _render_user(user, 422, update_form=form)
    try:
        update_user(
            user,
            actor=_actor(),
            name=form.name.data,
            role=Role(form.role.data),
            is_active=form.is_active.data,
            is_away=form.is_away.data,
        )
    except OperationError as exc:
        db.session.rollback()
        target = form.role if "role" in str(exc) else form.is_active
        target.errors = [*target.errors, str(exc)]
        return _render_user(user, 422, update_form=form)
    db.session.commit()
    flash(_("Saved %(name)s.", name=user.name), "success")
    return redirect(url_for(".user", user_id=user.id))


@bp.route("/users/<int:user_id>/password", methods=["POST"])
@role_required(Role.ADMIN)
def reset_password(user_id: int) -> ResponseReturnValue:
    user = _get(User, user_id)
    form = forms.PasswordForm()
    if not form.validate_on_submit():
        return _render_user(user, 422, password_form=form)
    try:
        set_password(user, form.password.data, actor=_actor())
    except OperationError as exc:
        db.session.rollback()
        form.password.errors = [str(exc)]
        return _render_user(user, 422, password_form=form)
    db.session.commit()
    flash(_("The password of %(name)s was changed.", name=user.name), "success")
    return redirect(url_for(".user", user_id=user.id))


# ------------------------------------------------------------------------ teams


def _member_choices() -> list[Any]:
    return forms.choices(
        (u.id, f"{u.name} <{u.email}>" if u.is_active_user else f"{u.name} ({_('inactive')})")
        for u in _users()
        if u.role is not Role.READ_ONLY
    )


def _users_by_id(ids: list[int]) -> list[User]:
    if not ids:
        return []
    return list(db.session.scalars(select(User).where(User.id.in_(ids))))


@bp.route("/teams", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def teams() -> ResponseReturnValue:
    form = forms.TeamForm()
    form.members.choices = _member_choices()
    if form.validate_on_submit():
        try:
            team = create_team(
                actor=_actor(),
                name=form.name.data,
                members=_users_by_id(form.members.data),
                round_robin=form.round_robin.data,
            )
        except OperationError as exc:
            db.session.rollback()
            form.name.errors = [*form.name.errors, str(exc)]
        else:
            db.session.commit()
            flash(_("Team %(name)s created.", name=team.name), "success")
            return redirect(url_for(".teams"))
    all_teams = db.session.scalars(
        select(Team).options(selectinload(Team.members)).order_by(func.lower(Team.name))
    ).all()
    status = 422 if form.is_submitted() else 200
    return render_template("admin/teams.html", teams=all_teams, form=form), status


@bp.route("/teams/<int:team_id>", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def team(team_id: int) -> ResponseReturnValue:
    team = _get(Team, team_id)
    form = forms.TeamUpdateForm(
        formdata=None if request.method == "GET" else request.form,
        members=[m.id for m in team.members],
        round_robin=team.is_round_robin,
    )
    form.members.choices = _member_choices()
    if form.validate_on_submit():
        update_team(
            team,
            actor=_actor(),
            members=_users_by_id(form.members.data),
            round_robin=form.round_robin.data,
        )
        db.session.commit()
        flash(_("Team %(name)s saved.", name=team.name), "success")
        return redirect(url_for(".teams"))
    status = 422 if request.method == "POST" else 200
    return render_template("admin/team.html", team=team, form=form), status


# ------------------------------------------------------------- canned responses


@bp.route("/canned", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def canned() -> ResponseReturnValue:
    form = forms.CannedResponseForm()
    if form.validate_on_submit():
        try:
            response = create_canned_response(
                actor=_actor(),
                title=form.title.data,
                shortcut=form.shortcut.data,
                body=form.body.data,
            )
        except OperationError as exc:
            db.session.rollback()
            _attach_canned_error(form, str(exc))
        else:
            db.session.commit()
            flash(_("Canned response /%(shortcut)s saved.", shortcut=response.shortcut), "success")
            return redirect(url_for(".canned"))
    responses = db.session.scalars(select(CannedResponse).order_by(CannedResponse.shortcut)).all()
    status = 422 if form.is_submitted() else 200
    return render_template(
        "admin/canned.html", responses=responses, form=form, placeholders=PLACEHOLDERS
    ), status


def _attach_canned_error(form: forms.CannedResponseForm, message: str) -> None:
    field = form.title
    if "shortcut" in message:
        field = form.shortcut
    elif "placeholder" in message or "body" in message:
        field = form.body
    field.errors = [*field.errors, message]


@bp.route("/canned/<int:response_id>", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def canned_edit(response_id: int) -> ResponseReturnValue:
    response = _get(CannedResponse, response_id)
    form = forms.CannedResponseForm(obj=response)
    if form.validate_on_submit():
        try:
            update_canned_response(
                response,
                actor=_actor(),
                title=form.title.data,
                shortcut=form.shortcut.data,
                body=form.body.data,
            )
        except OperationError as exc:
            db.session.rollback()
            _attach_canned_error(form, str(exc))
        else:
            db.session.commit()
            flash(_("Canned response /%(shortcut)s saved.", shortcut=response.shortcut), "success")
            return redirect(url_for(".canned"))
    status = 422 if form.is_submitted() else 200
    return render_template(
        "admin/canned_edit.html",
        response=response,
        form=form,
        delete_form=ConfirmForm(formdata=None),
        placeholders=PLACEHOLDERS,
    ), status


@bp.route("/canned/<int:response_id>/delete", methods=["POST"])
@role_required(Role.ADMIN)
def canned_delete(response_id: int) -> ResponseReturnValue:
    response = _get(CannedResponse, response_id)
    if ConfirmForm().validate_on_submit():
        shortcut = response.shortcut
        delete_canned_response(response, actor=_actor())
        db.session.commit()
        flash(_("Canned response /%(shortcut)s deleted.", shortcut=shortcut), "success")
    return redirect(url_for(".canned"))


# ---------------------------------------------------------- custom attributes


@bp.route("/attributes", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def attributes() -> ResponseReturnValue:
    form = forms.AttributeForm()
    if form.validate_on_submit():
        try:
            attribute = create_custom_attribute(
                actor=_actor(),
                applies_to=form.applies_to.data,
                key=form.key.data,
                label=form.label.data,
                type=form.type.data,
                options=forms.option_lines(form.options.data),
            )
        except OperationError as exc:
            db.session.rollback()
            message = str(exc)
            field = (
                form.key
                if "key" in message
                else form.options
                if "option" in message
                else form.label
            )
            field.errors = [*field.errors, message]
        else:
            db.session.commit()
            flash(_("Attribute %(label)s added.", label=attribute.label), "success")
            return redirect(url_for(".attributes"))
    definitions = db.session.scalars(
        select(CustomAttribute).order_by(CustomAttribute.applies_to, CustomAttribute.label)
    ).all()
    status = 422 if form.is_submitted() else 200
    return render_template(
        "admin/attributes.html",
        definitions=definitions,
        form=form,
        type_labels=forms.TYPE_LABELS,
        applies_labels=forms.APPLIES_LABELS,
    ), status


@bp.route("/attributes/<int:attribute_id>", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def attribute_edit(attribute_id: int) -> ResponseReturnValue:
    attribute = _get(CustomAttribute, attribute_id)
    form = forms.AttributeUpdateForm(
        formdata=None if request.method == "GET" else request.form,
        label=attribute.label,
        options="\n".join(attribute.options or []),
    )
    if form.validate_on_submit():
        try:
            update_custom_attribute(
                attribute,
                actor=_actor(),
                label=form.label.data,
                options=forms.option_lines(form.options.data)
                if attribute.type == "choice"
                else None,
            )
        except OperationError as exc:
            db.session.rollback()
            field = form.options if "option" in str(exc) else form.label
            field.errors = [*field.errors, str(exc)]
        else:
            db.session.commit()
            flash(_("Attribute %(label)s saved.", label=attribute.label), "success")
            return redirect(url_for(".attributes"))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "admin/attribute_edit.html",
        attribute=attribute,
        form=form,
        delete_form=ConfirmForm(formdata=None),
        type_labels=forms.TYPE_LABELS,
        applies_labels=forms.APPLIES_LABELS,
    ), status


@bp.route("/attributes/<int:attribute_id>/delete", methods=["POST"])
@role_required(Role.ADMIN)
def attribute_delete(attribute_id: int) -> ResponseReturnValue:
    attribute = _get(CustomAttribute, attribute_id)
    if ConfirmForm().validate_on_submit():
        label = attribute.label
        delete_custom_attribute(attribute, actor=_actor())
        db.session.commit()
        flash(_("Attribute %(label)s deleted.", label=label), "success")
    return redirect(url_for(".attributes"))


# ------------------------------------------------------------------- API tokens


def _render_tokens(
    form: forms.TokenForm, status: int = 200, new_secret: str | None = None
) -> ResponseReturnValue:
    tokens = db.session.scalars(
        select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc())
    ).all()
    body = render_template(
        "admin/tokens.html",
        tokens=tokens,
        form=form,
        new_secret=new_secret,
        revoke_form=ConfirmForm(formdata=None),
    )
    # The secret is on this page once; keep it out of every cache.
    return body, status, {"Cache-Control": "no-store"}


@bp.route("/tokens", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def tokens() -> ResponseReturnValue:
    form = forms.TokenForm()
    if form.validate_on_submit():
        try:
            token, secret = create_api_token(
                actor=_actor(), name=form.name.data, scopes=list(form.scopes.data)
            )
        except OperationError as exc:
            db.session.rollback()
            form.scopes.errors = [*form.scopes.errors, str(exc)]
            return _render_tokens(form, 422)
        db.session.commit()
        flash(
            _("Token %(name)s created. Copy it now: it is not shown again.", name=token.name),
            "success",
        )
        # Rendered, not redirected: the secret must never travel through the session.
        return _render_tokens(forms.TokenForm(formdata=None), 201, new_secret=secret)
    return _render_tokens(form, 422 if form.is_submitted() else 200)


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@role_required(Role.ADMIN)
def token_revoke(token_id: int) -> ResponseReturnValue:
    token = _get(ApiToken, token_id)
    if ConfirmForm().validate_on_submit() and token.revoked_at is None:
        revoke_api_token(token, actor=_actor())
        db.session.commit()
        flash(_("Token %(name)s revoked; it no longer works.", name=token.name), "success")
    return redirect(url_for(".tokens"))


# -------------------------------------------------------------------- audit log


@bp.route("/audit")
@role_required(Role.ADMIN)
def audit_log() -> ResponseReturnValue:
    action = request.args.get("action", "").strip()
    stmt = select(AuditEvent).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    if action.endswith(".*"):
        stmt = stmt.where(AuditEvent.action.startswith(action[:-1], autoescape=True))
    elif action:
        stmt = stmt.where(AuditEvent.action == action)
    page = db.paginate(stmt, per_page=AUDIT_PER_PAGE, error_out=False)
    actions = list(
        db.session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action))
    )
    families = sorted({a.split(".", 1)[0] + ".*" for a in actions})
    return render_template(
        "admin/audit.html", page=page, action=action, actions=actions, families=families
    )
