"""Events the SLA package sends after commit; each fires once per ticket and target."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from helpdesk.events import Event, _signals


@dataclass(frozen=True, slots=True)
class SlaFirstResponseBreached(Event):
    """A ticket passed its first-response due time without a reply."""

    name: ClassVar[str] = "sla.first_response_breached"
    ticket_id: int
    due_at: datetime


@dataclass(frozen=True, slots=True)
class SlaResolutionBreached(Event):
    """A ticket passed its resolution due time without being solved."""

    name: ClassVar[str] = "sla.resolution_breached"
    ticket_id: int
    due_at: datetime


first_response_breached = _signals.signal(SlaFirstResponseBreached.name)
resolution_breached = _signals.signal(SlaResolutionBreached.name)
