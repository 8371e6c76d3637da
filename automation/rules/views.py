"""Admin pages for rules: list and order, builder and JSON editor, versions, run log, dry run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from helpdesk.actors import Actor
from helpdesk.auth.access import role_required
from helpdesk.extensions import db
from helpdesk.models import Role, Team, User, utcnow

from . import builder
from .dry_run import dry_run
from .models import Rule, RuleRun, RuleVersion
from .operations import (
    create_rule,
    delete_rule,
    move_rule,
    parse_rule_json,
    restore_version,
    set_rule_enabled,
    update_rule,
)
from .schema import (
    ACTION_LABELS,
    EVENT_TRIGGERS,
    FIELDS,
    OPERATORS,
    OPERATORS_BY_TYPE,
    PRIORITIES,
    STATUSES,
    TEMPLATE_LOCALES,
    TIME_TRIGGERS,
    TRIGGER_LABELS,
    RuleValidationError,
)

bp = Blueprint("rules", __name__, url_prefix="/admin/rules")
RUNS_PER_PAGE = 50


def _actor() -> Actor:
    return Actor.for_user(current_user)


def _rule(rule_id: int) -> Rule:
    rule = db.session.get(Rule, rule_id)
    if rule is None:
        abort(404, f"There is no rule #{rule_id}.")
    return rule


def _catalogue() -> dict[str, Any]:
    return {
        "event_triggers": list(EVENT_TRIGGERS),
        "time_triggers": TIME_TRIGGERS,
        "trigger_labels": TRIGGER_LABELS,
        "fields": FIELDS,
        "operators": list(OPERATORS),
        "operators_by_type": OPERATORS_BY_TYPE,
        "action_labels": ACTION_LABELS,
        "statuses": STATUSES,
        "priorities": PRIORITIES,
        "locales": TEMPLATE_LOCALES,
        "teams": list(db.session.scalars(select(Team.name).order_by(Team.name))),
        "agents": list(
            db.session.scalars(
                select(User.email).where(User.is_active_user.is_(True)).order_by(User.email)
            )
        ),
    }


@bp.route("")
@role_required(Role.ADMIN)
def index():
    rules = list(db.session.scalars(select(Rule).order_by(Rule.position, Rule.id)))
    return render_template("rules/index.html", rules=rules, trigger_labels=TRIGGER_LABELS)


def _render_editor(
    rule: Rule | None,
    state: builder.BuilderState,
    json_text: str,
    *,
    mode: str,
    error: RuleValidationError | None = None,
    status: int = 200,
):
    return (
        render_template(
            "rules/edit.html",
            rule=rule,
            state=state,
            json_text=json_text,
            mode=mode,
            error=error,
            **_catalogue(),
        ),
        status,
    )


def _submitted() -> tuple[Any, builder.BuilderState, str, str]:
    """The rule JSON the form carries, from the JSON editor or the builder rows."""
    mode = "json" if request.form.get("mode") == "json" else "builder"
    if mode == "json":
        text = request.form.get("json", "")
        try:
            data = parse_rule_json(text)
        except RuleValidationError:
            return None, builder.BuilderState(), text, mode
        state = builder.state_from_definition(data if isinstance(data, dict) else None)
        return data, state, text, mode
    state = builder.state_from_form(request.form)
    data = builder.definition_from_state(state)
    return data, state, json.dumps(data, indent=2, ensure_ascii=False), mode


@bp.route("/new", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def new():
    if request.method == "GET":
        state = builder.BuilderState(actions=[])
        template = {
            "name": "",
            "trigger": {"type": "ticket.solved"},
            "conditions": {"all": []},
            "actions": [],
        }
        return _render_editor(None, state, json.dumps(template, indent=2), mode="builder")
    data, state, text, mode = _submitted()
    try:
        if data is None:
            parse_rule_json(text)
        rule = create_rule(data, actor=_actor(), enabled=bool(request.form.get("enabled")))
    except RuleValidationError as exc:
        db.session.rollback()
        return _render_editor(None, state, text, mode=mode, error=exc, status=422)
    db.session.commit()
    flash(f"Rule “{rule.name}” saved as version 1.", "success")
    return redirect(url_for("rules.edit", rule_id=rule.id))


@bp.route("/<int:rule_id>", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def edit(rule_id: int):
    rule = _rule(rule_id)
    if request.method == "GET":
        definition = rule.definition
        return _render_editor(
            rule,
            builder.state_from_definition(definition),
            json.dumps(definition, indent=2, ensure_ascii=False),
            mode=request.args.get("mode", "builder"),
        )
    data, state, text, mode = _submitted()
    try:
        if data is None:
            parse_rule_json(text)
        before = rule.current_version_id
        version = update_rule(rule, data, actor=_actor())
    except RuleValidationError as exc:
        db.session.rollback()
        return _render_editor(rule, state, text, mode=mode, error=exc, status=422)
    db.session.commit()
    if version.id == before:
        flash("Nothing changed.", "info")
    else:
        flash(f"Saved as version {version.number}.", "success")
    return redirect(url_for("rules.edit", rule_id=rule.id, mode=mode))


@bp.post("/<int:rule_id>/toggle")
@role_required(Role.ADMIN)
def toggle(rule_id: int):
    rule = _rule(rule_id)
    set_rule_enabled(rule, request.form.get("enabled") == "1", actor=_actor())
    db.session.commit()
    return redirect(url_for("rules.index"))


@bp.post("/<int:rule_id>/move")
@role_required(Role.ADMIN)
def move(rule_id: int):
    rule = _rule(rule_id)
    move_rule(rule, -1 if request.form.get("direction") == "up" else 1, actor=_actor())
    db.session.commit()
    return redirect(url_for("rules.index"))


@bp.post("/<int:rule_id>/delete")
@role_required(Role.ADMIN)
def delete(rule_id: int):
    rule = _rule(rule_id)
    name = rule.name
    delete_rule(rule, actor=_actor())
    db.session.commit()
    flash(f"Rule “{name}” deleted.", "success")
    return redirect(url_for("rules.index"))


@bp.route("/<int:rule_id>/versions")
@role_required(Role.ADMIN)
def versions(rule_id: int):
    rule = _rule(rule_id)
    rows = list(
        db.session.scalars(
            select(RuleVersion)
            .where(RuleVersion.rule_id == rule.id)
            .order_by(RuleVersion.number.desc())
        )
    )
    return render_template("rules/versions.html", rule=rule, versions=rows, json=json)


@bp.post("/<int:rule_id>/versions/<int:version_id>/restore")
@role_required(Role.ADMIN)
def restore(rule_id: int, version_id: int):
    rule = _rule(rule_id)
    version = db.session.get(RuleVersion, version_id)
    if version is None or version.rule_id != rule.id:
        abort(404)
    try:
        new_version = restore_version(rule, version, actor=_actor())
    except RuleValidationError as exc:
        db.session.rollback()
        flash(f"Version {version.number} can no longer be used: {exc}", "error")
        return redirect(url_for("rules.versions", rule_id=rule.id))
    db.session.commit()
    flash(f"Version {version.number} restored as version {new_version.number}.", "success")
    return redirect(url_for("rules.versions", rule_id=rule.id))


@bp.route("/runs")
@bp.route("/<int:rule_id>/runs")
@role_required(Role.ADMIN)
def runs(rule_id: int | None = None):
    rule = _rule(rule_id) if rule_id is not None else None
    stmt = select(RuleRun).order_by(RuleRun.id.desc())
    if rule is not None:
        stmt = stmt.where(RuleRun.rule_id == rule.id)
    before = request.args.get("before", type=int)
    if before:
        stmt = stmt.where(RuleRun.id < before)
    rows = list(db.session.scalars(stmt.limit(RUNS_PER_PAGE + 1)))
    more = len(rows) > RUNS_PER_PAGE
    rows = rows[:RUNS_PER_PAGE]
    return render_template(
        "rules/runs.html",
        rule=rule,
        runs=rows,
        next_before=rows[-1].id if more and rows else None,
        trigger_labels=TRIGGER_LABELS,
    )


def _parse_day(raw: str | None, default: datetime) -> datetime:
    if not raw:
        return default
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=UTC)
    except ValueError:
        return default


@bp.route("/dry-run", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def dry_run_page():
    rules = list(db.session.scalars(select(Rule).order_by(Rule.position, Rule.id)))
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    source = request.values
    rule_id = source.get("rule_id", type=int)
    text = source.get("json", "")
    if rule_id and not text:
        text = json.dumps(_rule(rule_id).definition, indent=2, ensure_ascii=False)
    since = _parse_day(source.get("since"), today - timedelta(days=30))
    until = _parse_day(source.get("until"), today)  # inclusive: the whole of that day
    report = error = None
    if request.method == "POST":
        try:
            report = dry_run(parse_rule_json(text), since=since, until=until + timedelta(days=1))
        except RuleValidationError as exc:
            error = exc
        db.session.rollback()
    return render_template(
        "rules/dry_run.html",
        rules=rules,
        rule_id=rule_id,
        json_text=text,
        since=since,
        until=until,
        report=report,
        error=error,
    ), (422 if error else 200)
