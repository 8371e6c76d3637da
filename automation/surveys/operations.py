"""Surveys: send one about a ticket (a reply with a one-time signed link) and record the answer."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select, update

from helpdesk import events
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Ticket, utcnow
from helpdesk.operations import audit
from helpdesk.operations.contacts import OperationError
from helpdesk.operations.messages import reply_to_ticket
from helpdesk.rows import changed_rows

from . import i18n
from .events import SurveyAnswered
from .models import Survey

KINDS = ("csat", "nps")
SALT = "rapport.survey"
URL_PREFIX = "/survey"
#: Links stop working after this many days.
MAX_AGE_DAYS = 30
MAX_COMMENT = 5000


class SurveyError(OperationError):
    """A survey answer that cannot be accepted; ``code`` says why (invalid, used, score)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def survey_token(survey: Survey) -> str:
    """The signed token in a survey link; it names the survey and its one-time nonce."""
    return _serializer().dumps({"s": survey.id, "n": survey.nonce})


def survey_url(survey: Survey) -> str:
    """The absolute link a customer follows to answer."""
    base = current_app.config["RAPPORT_PUBLIC_URL"].rstrip("/")
    return f"{base}{URL_PREFIX}/{survey_token(survey)}"


def survey_for_token(token: str) -> Survey:
    """The survey a genuine, unexpired token names; SurveyError otherwise."""
    try:
        data = _serializer().loads(token, max_age=MAX_AGE_DAYS * 86400)
    except SignatureExpired:
        raise SurveyError("invalid", "the survey link has expired") from None
    except BadSignature:
        raise SurveyError("invalid", "the survey link is not valid") from None
    if not isinstance(data, dict) or not isinstance(data.get("s"), int):
        raise SurveyError("invalid", "the survey link is not valid")
    survey = db.session.get(Survey, data["s"])
    if survey is None or not secrets.compare_digest(survey.nonce, str(data.get("n", ""))):
        raise SurveyError("invalid", "the survey link is not valid")
    return survey


def send_survey(
    ticket: Ticket, kind: str, *, actor: Actor, sent_by: str | None = None
) -> Survey | None:
    """Ask the ticket's contact a CSAT or NPS question on the ticket's channel.

    Returns None when a survey of this kind was already sent for the ticket, so
    solving, reopening and solving again asks once.
    """
    if kind not in KINDS:
        raise OperationError(f"unknown survey kind '{kind}'")
    existing = db.session.scalar(
        select(Survey.id).where(Survey.ticket_id == ticket.id, Survey.kind == kind).limit(1)
    )
    if existing is not None:
        return None
    contact = ticket.contact
    language = i18n.language_for(contact.locale, ticket.language)
    survey = Survey(
        kind=kind,
        ticket_id=ticket.id,
        contact_id=contact.id,
        nonce=secrets.token_hex(16),
        language=language,
        sent_by=sent_by or actor.label,
    )
    db.session.add(survey)
    db.session.flush()
    body = i18n.text(
        language,
        f"invite_{kind}",
        name=contact.first_name or "",
        subject=ticket.subject or f"#{ticket.id}",
        link=survey_url(survey),
    )
    reply_to_ticket(
        ticket,
        actor=actor if actor.is_automation else Actor.automation(None, "survey"),
        body=body,
        idempotency_key=f"survey-{survey.id}",
    )
    audit.record(
        "survey.sent",
        actor=actor,
        ticket_id=ticket.id,
        contact_id=contact.id,
        survey_id=survey.id,
        kind=kind,
        language=language,
    )
    return survey


@dataclass(frozen=True, slots=True)
class Answer:
    survey: Survey
    score: int
    comment: str | None


def answer_survey(token: str, score: int | str | None, comment: str | None = None) -> Answer:
    """Record the answer a genuine link carries, once. Sends survey.answered after commit."""
    survey = survey_for_token(token)
    try:
        value = int(score)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SurveyError("score", "choose a score") from None
    if value not in survey.scale:
        raise SurveyError(
            "score", f"the score must be between {survey.scale[0]} and {survey.scale[-1]}"
        )
    comment = (comment or "").strip()[:MAX_COMMENT] or None
    now = utcnow()
    # Single use is this conditional update, not a read followed by a write.
    claimed = changed_rows(
        update(Survey)
        .where(Survey.id == survey.id, Survey.answered_at.is_(None))
        .values(answered_at=now, score=value, comment=comment)
        .execution_options(synchronize_session=False)
    )
    if not claimed:
        raise SurveyError("used", "this survey was already answered")
    db.session.refresh(survey)
    actor = Actor("contact", survey.contact_id, survey.contact.display_name)
    audit.record(
        "survey.answered",
        actor=actor,
        ticket_id=survey.ticket_id,
        contact_id=survey.contact_id,
        survey_id=survey.id,
        kind=survey.kind,
        score=value,
        comment=comment,
    )
    events.on_commit(
        SurveyAnswered(
            actor=actor,
            survey_id=survey.id,
            ticket_id=survey.ticket_id,
            contact_id=survey.contact_id,
            kind=survey.kind,
            score=value,
        )
    )
    return Answer(survey=survey, score=value, comment=comment)


def ticket_surveys(ticket_id: int) -> list[Survey]:
    """The surveys sent about a ticket, newest first."""
    return list(
        db.session.scalars(
            select(Survey).where(Survey.ticket_id == ticket_id).order_by(Survey.sent_at.desc())
        )
    )
