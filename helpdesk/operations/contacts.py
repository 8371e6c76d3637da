"""Contacts: find by identity, create, edit, merge."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from types import EllipsisType
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from channels.base import IdentityKind, SenderIdentity
from helpdesk import events
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Contact, ContactIdentity, CustomAttribute, Order, Ticket
from helpdesk.rows import changed_rows

from . import audit

#: Called by ``merge_contacts`` inside its transaction as ``hook(source, target, actor)``;
#: each returns what it moved ({"vouchers": 2}) for the history. Packages that keep
#: rows per contact (loyalty, incentives) register here so a merge loses nothing.
MergeHook = Callable[["Contact", "Contact", Actor], dict[str, int]]
MERGE_HOOKS: list[MergeHook] = []


def on_merge(hook: MergeHook) -> MergeHook:
    """Register a function that moves a package's rows when two contacts merge."""
    if hook not in MERGE_HOOKS:
        MERGE_HOOKS.append(hook)
    return hook


class OperationError(ValueError):
    """A request that cannot be carried out; the message is safe to show."""


def normalize_identity(kind: IdentityKind, value: str) -> str:
    """Return the canonical form used for lookups (case, spacing, phone punctuation)."""
    value = value.strip()
    if kind is IdentityKind.EMAIL:
        return value.lower()
    if kind in (IdentityKind.PHONE, IdentityKind.WHATSAPP):
        value = value.removeprefix("whatsapp:")
        digits = re.sub(r"[^\d]", "", value)
        return ("+" + digits) if digits else value
    return value


@dataclass(frozen=True, slots=True)
class ContactRef:
    """A contact's id and name, read without loading the ORM object (the ingest hot path)."""

    id: int
    name: str


# Prebuilt, because building the statement costs more than running it, and
# every inbound message runs it.
_CONTACT_BY_IDENTITY = (
    select(Contact.id, Contact.name)
    .join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
    .where(ContactIdentity.kind == bindparam("kind"), ContactIdentity.value == bindparam("value"))
)


def find_contact_ref(kind: IdentityKind, value: str) -> ContactRef | None:
    """Like ``find_contact``, but only the id and name, read with one cached statement."""
    row = (
        db.session.connection()
        .execute(_CONTACT_BY_IDENTITY, {"kind": kind, "value": normalize_identity(kind, value)})
        .first()
    )
    return ContactRef(row.id, row.name) if row is not None else None


def find_contact(kind: IdentityKind, value: str) -> Contact | None:
    """Return the contact owning this identity (merges move identities, so it is the live one)."""
    return db.session.execute(
        select(Contact)
        .join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
        .where(
            ContactIdentity.kind == kind, ContactIdentity.value == normalize_identity(kind, value)
        )
    ).scalar_one_or_none()


def create_contact(
    *,
    actor: Actor,
    name: str = "",
    identities: list[SenderIdentity] | tuple[SenderIdentity, ...] = (),
    locale: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Contact:
    """Create a contact with its identities. Sends contact.created after commit."""
    ref = insert_contact(
        actor=actor, name=name, identities=identities, locale=locale, attributes=attributes
    )
    contact = db.session.get(Contact, ref.id)
    assert contact is not None, "inserted in this transaction"
    return contact


_INSERT_CONTACT = insert(Contact.__table__).returning(Contact.__table__.c.id)
_INSERT_IDENTITY = insert(ContactIdentity.__table__)


def insert_contact(
    *,
    actor: Actor,
    name: str = "",
    identities: list[SenderIdentity] | tuple[SenderIdentity, ...] = (),
    locale: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> ContactRef:
    """``create_contact`` without loading the new object: the ingest funnel's way.

    Core inserts, because every first message from someone new creates a
    contact, and the ORM flush cost several times the inserts.
    """
    db.session.flush()  # rows the caller left pending come first
    connection = db.session.connection()
    name = name.strip()[:200]
    contact_id: int = connection.execute(
        _INSERT_CONTACT, {"name": name, "locale": locale, "attributes": attributes or {}}
    ).scalar_one()
    for identity in identities:
        connection.execute(
            _INSERT_IDENTITY,
            {
                "contact_id": contact_id,
                "kind": identity.kind,
                "value": normalize_identity(identity.kind, identity.value),
                "display_name": identity.display_name,
            },
        )
    audit.record("contact.created", actor=actor, contact_id=contact_id)
    events.on_commit(events.ContactCreated(actor=actor, contact_id=contact_id))
    return ContactRef(contact_id, name)


def live_contact(contact: Contact) -> Contact:
    """Follow merges to the contact that was kept (the twin of ``tickets.get_ticket``)."""
    seen: set[int] = set()
    while contact.merged_into_id is not None and contact.id not in seen:
        seen.add(contact.id)
        target = db.session.get(Contact, contact.merged_into_id)
        if target is None:
            break
        contact = target
    return contact


def find_or_create_contact(sender: SenderIdentity, *, actor: Actor) -> tuple[Contact, bool]:
    """Return the contact for ``sender`` and whether it was created now."""
    contact = find_contact(sender.kind, sender.value)
    if contact is not None:
        if not contact.name and sender.display_name:
            contact.name = sender.display_name[:200]
        return contact, False
    name = sender.display_name or ""
    return create_contact(actor=actor, name=name, identities=[sender]), True


def add_identity(contact: Contact, identity: SenderIdentity, *, actor: Actor) -> ContactIdentity:
    """Attach an address to a contact; refuses one that belongs to someone else."""
    value = normalize_identity(identity.kind, identity.value)
    owner = find_contact(identity.kind, value)
    if owner is not None and owner.id != contact.id:
        raise OperationError(f"{value} already belongs to contact #{owner.id}; merge them instead")
    if owner is not None:
        return next(i for i in contact.identities if i.kind is identity.kind and i.value == value)
    row = ContactIdentity(kind=identity.kind, value=value, display_name=identity.display_name)
    contact.identities.append(row)
    db.session.flush()
    audit.record(
        "contact.identity_added",
        actor=actor,
        contact_id=contact.id,
        kind=identity.kind.value,
        value=value,
    )
    return row


def update_contact(
    contact: Contact,
    *,
    actor: Actor,
    name: str | None = None,
    company_id: int | EllipsisType | None = ...,
    locale: str | None = None,
    notes: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Contact:
    """Change a contact's fields; attributes are checked against their definitions."""
    changes: dict[str, Any] = {}
    if name is not None and name != contact.name:
        changes["name"] = [contact.name, name]
        contact.name = name.strip()[:200]
    if company_id is not ... and company_id != contact.company_id:
        changes["company_id"] = [contact.company_id, company_id]
        contact.company_id = company_id
    if locale is not None and locale != contact.locale:
        changes["locale"] = [contact.locale, locale]
        contact.locale = locale or None
    if notes is not None and notes != contact.notes:
        changes["notes"] = True
        contact.notes = notes
    if attributes is not None:
        merged = {**(contact.attributes or {}), **coerce_attributes("contact", attributes)}
        if merged != contact.attributes:
            changes["attributes"] = [contact.attributes, merged]
            contact.attributes = merged
    if changes:
        db.session.flush()
        audit.record("contact.updated", actor=actor, contact_id=contact.id, changes=changes)
    return contact


def coerce_attributes(applies_to: str, values: dict[str, Any]) -> dict[str, Any]:
    """Convert submitted values to each attribute's type; unknown keys are refused."""
    definitions = {
        d.key: d
        for d in db.session.scalars(
            select(CustomAttribute).where(CustomAttribute.applies_to == applies_to)
        )
    }
    result: dict[str, Any] = {}
    for key, raw in values.items():
        definition = definitions.get(key)
        if definition is None:
            raise OperationError(f"unknown {applies_to} attribute '{key}'")
        result[key] = _coerce(definition, raw)
    return result


def _coerce(definition: CustomAttribute, raw: Any) -> Any:
    if raw is None or raw == "":
        return None
    kind = definition.type
    try:
        if kind == "number":
            number = float(raw)
            return int(number) if number.is_integer() else number
        if kind == "boolean":
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in {"1", "true", "yes", "on"}
        if kind == "date":
            from datetime import date

            return date.fromisoformat(str(raw)).isoformat()
        if kind == "choice":
            if str(raw) not in definition.options:
                raise ValueError
            return str(raw)
        return str(raw)
    except ValueError:
        raise OperationError(f"'{raw}' is not a valid {kind} for '{definition.key}'") from None


def merge_contacts(source: Contact, target: Contact, *, actor: Actor) -> Contact:
    """Move identities, tickets and orders from ``source`` to ``target``; keep the history."""
    if source.id == target.id:
        raise OperationError("a contact cannot be merged into itself")
    if source.merged_into_id is not None:
        raise OperationError(f"contact #{source.id} was already merged")
    if target.merged_into_id is not None:
        raise OperationError(
            f"contact #{target.id} was merged into #{target.merged_into_id}; merge into that one"
        )
    moved = {
        "identities": changed_rows(
            update(ContactIdentity)
            .where(ContactIdentity.contact_id == source.id)
            .values(contact_id=target.id)
        ),
        "tickets": changed_rows(
            update(Ticket).where(Ticket.contact_id == source.id).values(contact_id=target.id)
        ),
        "orders": changed_rows(
            update(Order).where(Order.contact_id == source.id).values(contact_id=target.id)
        ),
    }
    from helpdesk.models import Message

    db.session.execute(
        update(Message).where(Message.contact_id == source.id).values(contact_id=target.id)
    )
    for hook in MERGE_HOOKS:
        moved.update(hook(source, target, actor))
    if not target.name and source.name:
        target.name = source.name
    target.attributes = {**(source.attributes or {}), **(target.attributes or {})}
    if target.company_id is None:
        target.company_id = source.company_id
    source.merged_into_id = target.id
    db.session.flush()
    db.session.expire(source)
    db.session.expire(target)
    audit.record(
        "contact.merged",
        actor=actor,
        contact_id=target.id,
        merged_contact_id=source.id,
        merged_name=source.name,
        moved=moved,
    )
    audit.record("contact.merged_away", actor=actor, contact_id=source.id, into=target.id)
    events.on_commit(events.ContactsMerged(actor=actor, contact_id=target.id, merged_id=source.id))
    return target
