"""Companies: the one write path the CRM pages need besides the contact operations."""

from __future__ import annotations

from sqlalchemy import func, select

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Company
from helpdesk.operations import audit
from helpdesk.operations.contacts import OperationError


def create_company(*, actor: Actor, name: str, domain: str | None = None) -> Company:
    """Create a company; names are unique regardless of case."""
    name = " ".join(name.split())[:200]
    if not name:
        raise OperationError("a company needs a name")
    taken = db.session.execute(
        select(Company.id).where(func.lower(Company.name) == name.lower())
    ).first()
    if taken:
        raise OperationError(f"a company named {name} exists already")
    domain = (domain or "").strip().lower().removeprefix("@") or None
    company = Company(name=name, domain=domain)
    db.session.add(company)
    db.session.flush()
    audit.record("company.created", actor=actor, company_id=company.id, name=name)
    return company
