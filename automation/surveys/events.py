"""Events the surveys package sends after commit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from helpdesk.events import Event, _signals


@dataclass(frozen=True, slots=True)
class SurveyAnswered(Event):
    """A contact answered a CSAT or NPS survey about a ticket."""

    name: ClassVar[str] = "survey.answered"
    survey_id: int
    ticket_id: int
    contact_id: int
    kind: str
    score: int


survey_answered = _signals.signal(SurveyAnswered.name)
