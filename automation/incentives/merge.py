"""When two contacts merge, their grants, vouchers and redemptions go to the one kept."""

from __future__ import annotations

from sqlalchemy import delete, update

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Contact
from helpdesk.operations.contacts import on_merge

from .models import IncentiveCapLock, IncentiveGrant, Voucher, VoucherRedemption
from .sql import changed_rows


@on_merge
def move_incentives(source: Contact, target: Contact, actor: Actor) -> dict[str, int]:
    """Move rewards; caps then count both people's grants together, as they are one person."""
    counts = {}
    for name, model in (
        ("grants", IncentiveGrant),
        ("vouchers", Voucher),
        ("redemptions", VoucherRedemption),
    ):
        counts[name] = changed_rows(
            update(model).where(model.contact_id == source.id).values(contact_id=target.id)
        )
    db.session.execute(delete(IncentiveCapLock).where(IncentiveCapLock.contact_id == source.id))
    return counts
