"""Admin pages for incentives: policies (list, create, edit as a new version, switch on or
off) and the report with its chart and CSV export. Admins only.

Each form view parses a Flask-WTF form, calls one operation, commits, flashes and
redirects; on a validation error it renders the page again with errors beside the fields.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from helpdesk.actors import Actor
from helpdesk.auth.access import role_required
from helpdesk.extensions import db
from helpdesk.models import Role

from . import forms, report
from .models import IncentivePolicy
from .operations import IncentiveError, create_policy, update_policy
from .policy import CONDITIONS

bp = Blueprint("incentive_admin", __name__, url_prefix="/admin/incentives")

RTL_LOCALES = ("ar",)


def _actor() -> Actor:
    return Actor.for_user(current_user)


def _current(key: str) -> IncentivePolicy:
    policy = db.session.execute(
        select(IncentivePolicy).where(
            IncentivePolicy.key == key, IncentivePolicy.is_current.is_(True)
        )
    ).scalar_one_or_none()
    if policy is None:
        abort(404, f"There is no incentive policy '{key}'.")
    return policy


@bp.context_processor
def _template_names() -> dict[str, Any]:
    return {
        "kind_labels": forms.KIND_LABELS,
        "period_labels": forms.PERIOD_LABELS,
        "conditions_help": CONDITIONS,
    }


@bp.route("/")
@role_required(Role.ADMIN)
def index() -> ResponseReturnValue:
    return redirect(url_for(".policies"))


# ------------------------------------------------------------------ policies


@bp.route("/policies")
@role_required(Role.ADMIN)
def policies() -> ResponseReturnValue:
    rows = list(
        db.session.scalars(
            select(IncentivePolicy)
            .where(IncentivePolicy.is_current.is_(True))
            .order_by(IncentivePolicy.is_active.desc(), IncentivePolicy.name)
        )
    )
    return render_template(
        "incentives/policies.html",
        policies=rows,
        budget_used=report.budget_use_now(rows),
    )


@bp.route("/policies/new", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def policy_new() -> ResponseReturnValue:
    form = forms.NewPolicyForm()
    if form.validate_on_submit():
        terms = form.terms()
        try:
            policy = create_policy(
                actor=_actor(),
                key=form.key.data,
                name=terms.pop("name"),
                kind=terms.pop("kind"),
                value=terms.pop("value"),
                **terms,
            )
            db.session.commit()
        except IncentiveError as exc:
            db.session.rollback()
            if exc.code == "conflict":
                form.key.errors = [*form.key.errors, _("A policy with this key exists already.")]
            else:
                form.form_errors.append(str(exc))
        else:
            flash(_("Policy “%(name)s” created.", name=policy.name), "success")
            return redirect(url_for(".policies"))
    status = 422 if form.errors else 200
    return render_template("incentives/policy_edit.html", form=form, policy=None), status


@bp.route("/policies/<key>", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def policy_edit(key: str) -> ResponseReturnValue:
    policy = _current(key)
    form = forms.PolicyForm()
    if request.method == "GET":
        form.fill_from(policy)
    elif form.validate_on_submit():
        changes = forms.changed_terms(policy, form.terms())
        if not changes:
            flash(_("Nothing changed; no new version was made."), "info")
            return redirect(url_for(".policy_edit", key=key))
        try:
            successor = update_policy(policy, actor=_actor(), **changes)
            db.session.commit()
        except IncentiveError as exc:
            db.session.rollback()
            form.form_errors.append(str(exc))
        else:
            flash(
                _(
                    "Saved as version %(version)s; grants already made keep their terms.",
                    version=successor.version,
                ),
                "success",
            )
            return redirect(url_for(".policy_edit", key=key))
    versions = list(
        db.session.scalars(
            select(IncentivePolicy)
            .where(IncentivePolicy.key == key)
            .order_by(IncentivePolicy.version.desc())
        )
    )
    used = report.budget_use_now([policy]).get(policy.key)
    status = 422 if form.errors else 200
    return (
        render_template(
            "incentives/policy_edit.html",
            form=form,
            policy=policy,
            versions=versions,
            budget_used=used,
        ),
        status,
    )


@bp.route("/policies/<key>/active", methods=["POST"])
@role_required(Role.ADMIN)
def policy_toggle(key: str) -> ResponseReturnValue:
    policy = _current(key)
    form = forms.ToggleForm()
    if not form.validate_on_submit():
        abort(400, "Choose on or off.")
    wanted = form.is_active.data == "1"
    if wanted == policy.is_active:
        return redirect(url_for(".policies"))
    try:
        update_policy(policy, actor=_actor(), is_active=wanted)
        db.session.commit()
    except IncentiveError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        message = (
            _("“%(name)s” is on: rules may grant it again.", name=policy.name)
            if wanted
            else _("“%(name)s” is off: nothing new is granted under it.", name=policy.name)
        )
        flash(message, "success")
    return redirect(url_for(".policies"))


# ------------------------------------------------------------------ report


_PERIOD_ERRORS = {
    "dates": lambda: _("Enter both dates (from and to) for a custom period."),
    "order": lambda: _("The end date is before the start date."),
    "length": lambda: _("Choose a period of at most ten years."),
}


@bp.route("/report")
@role_required(Role.ADMIN)
def report_page() -> ResponseReturnValue:
    period, errors = report.parse_period(request.args)
    figures = report.incentive_report(period)
    rtl = str(get_locale()) in RTL_LOCALES
    return render_template(
        "incentives/report.html",
        report=figures,
        period=period,
        period_errors=[_PERIOD_ERRORS[e]() for e in errors],
        apology=report.apology_effectiveness(period),
        chart=report.bar_chart(figures.rows, rtl=rtl),
        presets=report.PRESETS,
        min_sample=report.MIN_SAMPLE,
        sorted_money=report.sorted_money,
        custom_from=request.args.get("from", period.first.isoformat()),
        custom_to=request.args.get("to", period.last.isoformat()),
    )


@bp.route("/report.csv")
@role_required(Role.ADMIN)
def report_csv() -> ResponseReturnValue:
    period, errors = report.parse_period(request.args)
    if errors:
        abort(400, _PERIOD_ERRORS[errors[0]]())
    body = report.report_csv(report.incentive_report(period))
    name = f"incentives-{period.first.isoformat()}-{period.last.isoformat()}.csv"
    return Response(
        body.encode("utf-8"),
        mimetype="text/csv",
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
