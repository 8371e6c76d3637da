"""Events the rules package sends (after commit), beside the core catalogue in helpdesk.events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from helpdesk.events import Event, _signals


@dataclass(frozen=True, slots=True)
class ActivityReported(Event):
    """A shop reported something a contact did (a review approved, a post shared, a visit)."""

    name: ClassVar[str] = "activity.reported"
    activity_id: int
    contact_id: int
    type: str


@dataclass(frozen=True, slots=True)
class WebhookQueued(Event):
    """A rule queued a webhook call; it is sent by a job once the queueing commits."""

    name: ClassVar[str] = "automation.webhook_queued"
    delivery_id: int


activity_reported = _signals.signal(ActivityReported.name)
webhook_queued = _signals.signal(WebhookQueued.name)
