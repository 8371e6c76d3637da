"""Saved inbox views: create, delete, look up.

These are operation-shaped (explicit actor, flush, audit) and belong in
``helpdesk/operations``; they live here until the lead moves them, so the
inbox views stay thin and never touch the model themselves.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import SavedView, User
from helpdesk.operations import audit
from helpdesk.operations.contacts import OperationError


def create_saved_view(
    *, actor: Actor, owner: User, name: str, filters: dict[str, Any], is_shared: bool = False
) -> SavedView:
    """Save a named set of inbox filters for ``owner`` (shared with everyone if asked)."""
    name = (name or "").strip()[:120]
    if not name:
        raise OperationError("a saved view needs a name")
    view = SavedView(user_id=owner.id, name=name, filters=filters, is_shared=is_shared)
    db.session.add(view)
    db.session.flush()
    audit.record("saved_view.created", actor=actor, saved_view_id=view.id, name=name)
    return view


def delete_saved_view(view: SavedView, *, actor: Actor) -> None:
    """Remove a saved view; only its owner may."""
    if not actor.is_user or actor.id != view.user_id:
        raise OperationError("only the owner can delete a saved view")
    audit.record("saved_view.deleted", actor=actor, saved_view_id=view.id, name=view.name)
    db.session.delete(view)
    db.session.flush()


def visible_saved_views(user: User) -> list[SavedView]:
    """Return the user's own saved views and those others shared, by name."""
    return list(
        db.session.scalars(
            select(SavedView)
            .where(or_(SavedView.user_id == user.id, SavedView.is_shared.is_(True)))
            .order_by(SavedView.name, SavedView.id)
        )
    )


def get_visible_saved_view(view_id: int, user: User) -> SavedView | None:
    view = db.session.get(SavedView, view_id)
    if view is None or (view.user_id != user.id and not view.is_shared):
        return None
    return view
