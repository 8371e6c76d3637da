"""The public answer page a survey link opens, in the contact's language (RTL for Arabic)."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_babel import force_locale

from helpdesk.auth.access import public
from helpdesk.extensions import db, limiter

from . import i18n
from .operations import URL_PREFIX, SurveyError, answer_survey, survey_for_token

bp = Blueprint("surveys", __name__, url_prefix=URL_PREFIX)

#: Per address: enough for a person, too few to try tokens by brute force.
RATE_LIMIT = "30/minute"


def _page(survey, language: str, status: int = 200, **context):
    def t(key: str, **values: object) -> str:
        return i18n.text(language, key, **values)

    with force_locale(language):
        html = render_template(
            "surveys/answer.html",
            survey=survey,
            language=language,
            rtl=language in i18n.RTL,
            t=t,
            **context,
        )
    return html, status


@bp.route("/<token>", methods=["GET", "POST"])
@limiter.limit(RATE_LIMIT)
@public
def answer(token: str):
    try:
        survey = survey_for_token(token)
    except SurveyError:
        language = i18n.language_for(request.args.get("lang"), *request.accept_languages.values())
        return _page(None, language, 404, state="invalid")
    language = survey.language
    if survey.answered_at is not None:
        return _page(survey, language, 200, state="used")
    if request.method == "GET":
        preset = request.args.get("score", type=int)
        return _page(survey, language, state="form", preset=preset)
    try:
        answer_survey(token, request.form.get("score"), request.form.get("comment"))
    except SurveyError as exc:
        db.session.rollback()
        if exc.code == "used":
            return _page(survey, language, 409, state="used")
        return _page(
            survey,
            language,
            422,
            state="form",
            error=i18n.text(language, "pick"),
            comment=request.form.get("comment", ""),
        )
    db.session.commit()
    return _page(survey, language, state="thanks")
