"""Record who changed what; the audit trail also feeds the CRM timeline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import AuditEvent

# A prebuilt Core insert on the session's connection: audit rows are written by
# nearly every operation and never read back in the same transaction as objects,
# and the ORM unit of work costs several times the insert itself (bench/core_bench.py).
_INSERT = insert(AuditEvent.__table__)


def record(
    action: str,
    *,
    actor: Actor,
    ticket_id: int | None = None,
    contact_id: int | None = None,
    **data: Any,
) -> None:
    """Append one audit entry in the current transaction."""
    db.session.connection().execute(
        _INSERT,
        {
            "action": action,
            "actor_kind": actor.kind,
            "actor_id": actor.id,
            "actor_label": actor.label,
            "ticket_id": ticket_id,
            "contact_id": contact_id,
            "data": data,
        },
    )
