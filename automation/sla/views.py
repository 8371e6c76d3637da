"""Admin pages for SLA policies and business-hours calendars."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from helpdesk.auth.access import role_required
from helpdesk.extensions import db
from helpdesk.models import Role

from .hours import WEEKDAYS
from .models import BusinessCalendar, SlaPolicy
from .operations import SlaError, save_calendar, save_policy

bp = Blueprint("sla", __name__, url_prefix="/admin/sla")

PRIORITIES = ("low", "normal", "high", "urgent")
DEFAULT_HOURS = {day: [["09:00", "17:00"]] for day in WEEKDAYS[:5]}


def _page(status: int = 200, **context: Any):
    policies = list(
        db.session.scalars(select(SlaPolicy).order_by(SlaPolicy.position, SlaPolicy.id))
    )
    calendars = list(db.session.scalars(select(BusinessCalendar).order_by(BusinessCalendar.name)))
    context.setdefault("calendar_form", {"hours": json.dumps(DEFAULT_HOURS), "timezone": "UTC"})
    context.setdefault("policy_form", {})
    return (
        render_template(
            "sla/index.html",
            policies=policies,
            calendars=calendars,
            priorities=PRIORITIES,
            json=json,
            **context,
        ),
        status,
    )


@bp.route("")
@role_required(Role.ADMIN)
def index():
    return _page()


def _minutes(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise SlaError("minutes", f"'{raw}' is not a number of minutes") from None


@bp.post("/policies")
@role_required(Role.ADMIN)
def save_policy_view():
    form = request.form
    policy = None
    if form.get("policy_id"):
        policy = db.session.get(SlaPolicy, int(form["policy_id"]))
        if policy is None:
            abort(404)
    calendar = (
        db.session.get(BusinessCalendar, int(form["calendar_id"]))
        if form.get("calendar_id")
        else None
    )
    try:
        save_policy(
            name=form.get("name", ""),
            first_response_minutes=_minutes(form.get("first_response_minutes")),
            resolution_minutes=_minutes(form.get("resolution_minutes")),
            priorities=form.getlist("priorities"),
            channels=[c.strip() for c in form.get("channels", "").split(",") if c.strip()],
            calendar=calendar,
            pause_when_pending=bool(form.get("pause_when_pending")),
            position=form.get("position", type=int),
            policy=policy,
        )
    except SlaError as exc:
        db.session.rollback()
        return _page(422, policy_error=str(exc), policy_form=form)
    db.session.commit()
    flash("SLA policy saved.", "success")
    return redirect(url_for("sla.index"))


@bp.post("/calendars")
@role_required(Role.ADMIN)
def save_calendar_view():
    form = request.form
    calendar = None
    if form.get("calendar_id"):
        calendar = db.session.get(BusinessCalendar, int(form["calendar_id"]))
        if calendar is None:
            abort(404)
    try:
        try:
            hours = json.loads(form.get("hours") or "{}")
        except json.JSONDecodeError as exc:
            raise SlaError("hours", f"not valid JSON: {exc.msg}") from None
        if not isinstance(hours, dict):
            raise SlaError("hours", 'give an object like {"mon": [["09:00", "17:00"]]}')
        holidays = [h.strip() for h in form.get("holidays", "").split() if h.strip()]
        save_calendar(
            name=form.get("name", ""),
            timezone=form.get("timezone", "UTC").strip(),
            hours=hours,
            holidays=holidays,
            calendar=calendar,
        )
    except SlaError as exc:
        db.session.rollback()
        return _page(422, calendar_error=str(exc), calendar_form=form)
    db.session.commit()
    flash("Calendar saved.", "success")
    return redirect(url_for("sla.index"))
