"""Record who changed what; the audit trail also feeds the CRM timeline."""

from __future__ import annotations

from typing import Any

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import AuditEvent


def record(
    action: str,
    *,
    actor: Actor,
    ticket_id: int | None = None,
    contact_id: int | None = None,
    **data: Any,
) -> AuditEvent:
    """Append one audit entry in the current transaction."""
    entry = AuditEvent(
        action=action,
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_label=actor.label,
        ticket_id=ticket_id,
        contact_id=contact_id,
        data=data,
    )
    db.session.add(entry)
    return entry
