"""The default survey after a ticket is solved, when ``RAPPORT_SURVEY_ON_SOLVE`` names a kind.

Rules can send surveys too (the ``send_survey`` action); the default and a rule
never ask twice, because a ticket gets at most one survey of each kind.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from helpdesk import events
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.jobs import job
from helpdesk.models import Ticket

from .operations import KINDS, send_survey


@job()
def send_default_survey(ticket_id: int, kind: str) -> bool:
    """Send the configured survey about a solved ticket; False when one was already sent."""
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None or ticket.merged_into_id is not None:
        return False
    survey = send_survey(ticket, kind, actor=Actor.automation(None, "survey after solve"))
    db.session.commit()
    return survey is not None


@events.ticket_solved.connect
def _survey_after_solve(sender: Any, event: events.TicketSolved, **_: Any) -> None:
    kind = (current_app.config.get("RAPPORT_SURVEY_ON_SOLVE") or "").strip().lower()
    if kind not in KINDS:
        return
    send_default_survey(event.ticket_id, kind)
