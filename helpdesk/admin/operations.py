"""Admin operations: canned responses, custom attribute definitions, team membership.

Plain functions with an explicit actor; they flush, audit and raise
:class:`OperationError` with a message safe to show, and never commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import func, select

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import CannedResponse, CustomAttribute, Team, User
from helpdesk.operations import audit
from helpdesk.operations.contacts import OperationError

# ------------------------------------------------------------ canned responses

#: What a canned response may say in ``{{ … }}`` (``helpdesk.inbox.canned`` fills them in,
#: in Jinja's sandbox); anything else is refused when saved.
PLACEHOLDERS = (
    "contact.first_name",
    "contact.name",
    "contact.email",
    "ticket.number",
    "ticket.subject",
    "agent.first_name",
    "agent.name",
    "agent.email",
)
_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_SANDBOX = SandboxedEnvironment()
_SHORTCUT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def placeholders_in(body: str) -> list[str]:
    """Return the placeholder names used in ``body``, in order."""
    return _PLACEHOLDER.findall(body)


def _check_canned(title: str, shortcut: str, body: str, *, exclude_id: int | None) -> None:
    if not title:
        raise OperationError("a canned response needs a title")
    if len(title) > 200:
        raise OperationError("the title can have at most 200 characters")
    if not _SHORTCUT.match(shortcut):
        raise OperationError(
            "a shortcut is 1 to 64 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    if not body.strip():
        raise OperationError("a canned response needs a body")
    unknown = sorted({name for name in placeholders_in(body) if name not in PLACEHOLDERS})
    if unknown:
        raise OperationError(
            f"unknown placeholder(s): {', '.join(unknown)}; known: {', '.join(PLACEHOLDERS)}"
        )
    try:
        _SANDBOX.parse(body)
    except TemplateSyntaxError as exc:
        raise OperationError(
            f"the body is not a valid template ({exc.message}); "
            "write placeholders as {{ contact.first_name }}"
        ) from None
    taken = select(CannedResponse.id).where(CannedResponse.shortcut == shortcut)
    if exclude_id is not None:
        taken = taken.where(CannedResponse.id != exclude_id)
    if db.session.execute(taken).first():
        raise OperationError(f"the shortcut {shortcut} is taken")


def _shortcut(value: str) -> str:
    return value.strip().removeprefix("/").lower()


def create_canned_response(*, actor: Actor, title: str, shortcut: str, body: str) -> CannedResponse:
    """Save a reusable reply under a unique shortcut."""
    title, shortcut = title.strip(), _shortcut(shortcut)
    _check_canned(title, shortcut, body, exclude_id=None)
    response = CannedResponse(title=title, shortcut=shortcut, body=body.strip())
    db.session.add(response)
    db.session.flush()
    audit.record(
        "canned_response.created", actor=actor, canned_response_id=response.id, shortcut=shortcut
    )
    return response


def update_canned_response(
    response: CannedResponse,
    *,
    actor: Actor,
    title: str | None = None,
    shortcut: str | None = None,
    body: str | None = None,
) -> CannedResponse:
    """Change a canned response's title, shortcut or body."""
    new_title = response.title if title is None else title.strip()
    new_shortcut = response.shortcut if shortcut is None else _shortcut(shortcut)
    new_body = response.body if body is None else body.strip()
    _check_canned(new_title, new_shortcut, new_body, exclude_id=response.id)
    changed = [
        name
        for name, old, new in (
            ("title", response.title, new_title),
            ("shortcut", response.shortcut, new_shortcut),
            ("body", response.body, new_body),
        )
        if old != new
    ]
    if changed:
        response.title, response.shortcut, response.body = new_title, new_shortcut, new_body
        db.session.flush()
        audit.record(
            "canned_response.updated", actor=actor, canned_response_id=response.id, changed=changed
        )
    return response


def delete_canned_response(response: CannedResponse, *, actor: Actor) -> None:
    """Remove a canned response; replies already sent keep their text."""
    audit.record(
        "canned_response.deleted",
        actor=actor,
        canned_response_id=response.id,
        shortcut=response.shortcut,
    )
    db.session.delete(response)
    db.session.flush()


# ------------------------------------------------- custom attribute definitions

ATTRIBUTE_TYPES = ("text", "number", "boolean", "date", "choice")
APPLIES_TO = ("contact", "ticket")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _clean_options(options: Iterable[str]) -> list[str]:
    cleaned: list[str] = []
    for option in options:
        option = option.strip()
        if option and option not in cleaned:
            if len(option) > 100:
                raise OperationError("an option can have at most 100 characters")
            cleaned.append(option)
    return cleaned


def create_custom_attribute(
    *,
    actor: Actor,
    applies_to: str,
    key: str,
    label: str,
    type: str = "text",
    options: Iterable[str] = (),
) -> CustomAttribute:
    """Define a typed custom field for contacts or tickets."""
    key, label = key.strip().lower(), label.strip()
    if applies_to not in APPLIES_TO:
        raise OperationError(f"attributes apply to {' or '.join(APPLIES_TO)}")
    if not _KEY.match(key):
        raise OperationError(
            "a key is 1 to 64 lowercase letters, digits or '_', starting with a letter"
        )
    if not label or len(label) > 120:
        raise OperationError("a label of 1 to 120 characters is needed")
    if type not in ATTRIBUTE_TYPES:
        raise OperationError(f"the type must be one of {', '.join(ATTRIBUTE_TYPES)}")
    cleaned = _clean_options(options) if type == "choice" else []
    if type == "choice" and not cleaned:
        raise OperationError("a choice attribute needs at least one option")
    taken = db.session.execute(
        select(CustomAttribute.id).where(
            CustomAttribute.applies_to == applies_to, func.lower(CustomAttribute.key) == key
        )
    ).first()
    if taken:
        raise OperationError(f"a {applies_to} attribute with the key {key} exists already")
    attribute = CustomAttribute(
        applies_to=applies_to, key=key, label=label, type=type, options=cleaned
    )
    db.session.add(attribute)
    db.session.flush()
    audit.record(
        "custom_attribute.created",
        actor=actor,
        attribute_id=attribute.id,
        applies_to=applies_to,
        key=key,
        type=type,
    )
    return attribute


def update_custom_attribute(
    attribute: CustomAttribute,
    *,
    actor: Actor,
    label: str | None = None,
    options: Iterable[str] | None = None,
) -> CustomAttribute:
    """Relabel an attribute or change a choice's options; key and type never change."""
    changes: dict[str, Any] = {}
    if label is not None:
        label = label.strip()
        if not label or len(label) > 120:
            raise OperationError("a label of 1 to 120 characters is needed")
        if label != attribute.label:
            changes["label"] = [attribute.label, label]
            attribute.label = label
    if options is not None and attribute.type == "choice":
        cleaned = _clean_options(options)
        if not cleaned:
            raise OperationError("a choice attribute needs at least one option")
        if cleaned != list(attribute.options or []):
            changes["options"] = [attribute.options, cleaned]
            attribute.options = cleaned
    if changes:
        db.session.flush()
        audit.record(
            "custom_attribute.updated", actor=actor, attribute_id=attribute.id, changes=changes
        )
    return attribute


def delete_custom_attribute(attribute: CustomAttribute, *, actor: Actor) -> None:
    """Remove a definition; values already stored stay in the records but are no longer shown."""
    audit.record(
        "custom_attribute.deleted",
        actor=actor,
        attribute_id=attribute.id,
        applies_to=attribute.applies_to,
        key=attribute.key,
    )
    db.session.delete(attribute)
    db.session.flush()


# ------------------------------------------------------------------------ teams


def update_team(
    team: Team,
    *,
    actor: Actor,
    members: list[User] | None = None,
    round_robin: bool | None = None,
) -> Team:
    """Change who is on a team and whether new tickets go round the members in turn."""
    changes: dict[str, Any] = {}
    if members is not None:
        old = sorted(m.id for m in team.members)
        new = sorted({m.id for m in members})
        if old != new:
            changes["members"] = [old, new]
            team.members = sorted({m.id: m for m in members}.values(), key=lambda m: m.id)
    if round_robin is not None and round_robin != team.is_round_robin:
        changes["round_robin"] = [team.is_round_robin, round_robin]
        team.is_round_robin = round_robin
    if changes:
        db.session.flush()
        audit.record("team.updated", actor=actor, team_id=team.id, changes=changes)
    return team
