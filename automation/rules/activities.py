"""Activities a shop reports about a contact (a review approved, a post shared, a store visit)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from helpdesk import events
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Contact
from helpdesk.operations import audit

from .events import ActivityReported
from .models import ReportedActivity

ACTIVITY_TYPE = re.compile(r"^[a-z][a-z0-9_.\-]{0,63}$")


def report_activity(
    contact: Contact,
    activity_type: str,
    *,
    actor: Actor,
    data: dict[str, Any] | None = None,
    external_id: str | None = None,
    api_token_id: int | None = None,
) -> tuple[ReportedActivity, bool]:
    """Store an activity once per ``external_id``; sends activity.reported after commit if new."""
    if external_id:
        existing = db.session.scalar(
            select(ReportedActivity).where(ReportedActivity.external_id == external_id)
        )
        if existing is not None:
            return existing, False
    activity = ReportedActivity(
        contact_id=contact.id,
        type=activity_type,
        data=dict(data or {}),
        external_id=external_id,
        api_token_id=api_token_id,
    )
    try:
        with db.session.begin_nested():
            db.session.add(activity)
            db.session.flush()
    except IntegrityError:  # the same report arrived twice at once
        existing = db.session.scalar(
            select(ReportedActivity).where(ReportedActivity.external_id == external_id)
        )
        if existing is None:
            raise
        return existing, False
    audit.record(
        "activity.reported",
        actor=actor,
        contact_id=contact.id,
        activity_id=activity.id,
        type=activity_type,
    )
    events.on_commit(
        ActivityReported(
            actor=actor, activity_id=activity.id, contact_id=contact.id, type=activity_type
        )
    )
    return activity, True
