"""Quarantine: keep what a channel could not take in, show it to admins, retry it.

Any channel (email, Twilio, Telegram) calls :func:`quarantine` with the raw
payload when parsing or ingesting raises, commits, and carries on with the next
item, so one bad payload never stops a poller or a webhook. Each channel
registers a reprocessor that feeds the raw bytes through its normal path again;
:func:`reprocess` runs it and marks the item resolved when it succeeds.

Operations here flush and never commit; the caller commits.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from helpdesk.auth.access import role_required
from helpdesk.extensions import db
from helpdesk.models import Role, utcnow
from helpdesk.models.quarantine import QuarantinedItem

log = logging.getLogger(__name__)

#: A reprocessor takes the item and returns a short description of the outcome
#: ("message 12 on ticket #4"); it raises when the payload still fails.
Reprocessor = Callable[[QuarantinedItem], str | None]

MAX_ERROR_CHARS = 20_000
_reprocessors: dict[str, Reprocessor] = {}


def register_reprocessor(channel: str, handler: Reprocessor) -> Reprocessor:
    """Name the function that retries ``channel``'s quarantined payloads."""
    _reprocessors[channel] = handler
    return handler


def reprocessor_for(channel: str) -> Reprocessor | None:
    """Return the registered reprocessor for ``channel``, or None."""
    return _reprocessors.get(channel)


def quarantine(channel: str, source: str, raw: bytes, error: str) -> QuarantinedItem:
    """Keep a payload that failed, with the error; the same open payload is kept once."""
    raw = bytes(raw)
    digest = hashlib.sha256(raw).hexdigest()
    now = utcnow()
    existing = db.session.execute(
        select(QuarantinedItem)
        .where(
            QuarantinedItem.channel == channel,
            QuarantinedItem.raw_sha256 == digest,
            QuarantinedItem.resolved_at.is_(None),
        )
        .limit(1)
    ).scalar_one_or_none()
    if existing is not None:
        # The same bytes failed again (a re-scan, a second import): count, don't copy.
        existing.attempts += 1
        existing.error = error[-MAX_ERROR_CHARS:]
        existing.last_attempt_at = now
        existing.source = source[:500]
        db.session.flush()
        return existing
    item = QuarantinedItem(
        channel=channel,
        source=source[:500],
        raw=raw,
        raw_sha256=digest,
        error=error[-MAX_ERROR_CHARS:],
        attempts=1,
        created_at=now,
        last_attempt_at=now,
    )
    db.session.add(item)
    db.session.flush()
    log.warning("quarantined %s payload from %s: %s", channel, source, item.error_summary)
    return item


def reprocess(item: QuarantinedItem, handler: Reprocessor | None = None) -> bool:
    """Run the payload through its channel again; True and resolved when it succeeds.

    The handler runs inside a savepoint, so a failure leaves nothing half-stored;
    the item then records the new error and one more attempt.
    """
    import traceback

    if item.resolved_at is not None:
        return True
    handler = handler or reprocessor_for(item.channel)
    if handler is None:
        raise LookupError(f"no reprocessor registered for channel '{item.channel}'")
    item.attempts += 1
    item.last_attempt_at = utcnow()
    try:
        with db.session.begin_nested():
            outcome = handler(item)
    except Exception:
        item.error = traceback.format_exc()[-MAX_ERROR_CHARS:]
        db.session.flush()
        return False
    item.resolved_at = utcnow()
    item.resolution = (outcome or "reprocessed")[:500]
    db.session.flush()
    return True


def dismiss(item: QuarantinedItem, *, by: str) -> QuarantinedItem:
    """Mark an item as dealt with by hand (spam, a mail nobody needs)."""
    if item.resolved_at is None:
        item.resolved_at = utcnow()
        item.resolution = f"dismissed by {by}"[:500]
        db.session.flush()
    return item


def open_count() -> int:
    """How many items still wait for a person."""
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(QuarantinedItem)
            .where(QuarantinedItem.resolved_at.is_(None))
        )
        or 0
    )


# Admin pages ------------------------------------------------------------------

bp = Blueprint("quarantine", __name__, url_prefix="/admin/quarantine")
PER_PAGE = 50
PREVIEW_BYTES = 20_000


@bp.get("/")
@role_required(Role.ADMIN)
def index():
    show = request.args.get("show", "open")
    query = select(QuarantinedItem).order_by(QuarantinedItem.id.desc()).limit(PER_PAGE)
    if show != "all":
        query = query.where(QuarantinedItem.resolved_at.is_(None))
    items = db.session.scalars(query).all()
    return render_template("quarantine/index.html", items=items, show=show, open=open_count())


@bp.get("/<int:item_id>")
@role_required(Role.ADMIN)
def show(item_id: int):
    item = db.session.get(QuarantinedItem, item_id) or abort(404)
    preview = item.raw[:PREVIEW_BYTES].decode("utf-8", "replace")
    return render_template(
        "quarantine/show.html",
        item=item,
        preview=preview,
        truncated=len(item.raw) > PREVIEW_BYTES,
        can_reprocess=reprocessor_for(item.channel) is not None,
    )


@bp.post("/<int:item_id>/reprocess")
@role_required(Role.ADMIN)
def reprocess_item(item_id: int):
    item = db.session.get(QuarantinedItem, item_id) or abort(404)
    if reprocessor_for(item.channel) is None:
        abort(409, _("Nothing can reprocess %(channel)s items yet.", channel=item.channel))
    ok = reprocess(item)
    db.session.commit()
    if ok:
        flash(_("Reprocessed: %(outcome)s", outcome=item.resolution), "success")
    else:
        flash(_("Still failing: %(error)s", error=item.error_summary), "error")
    return redirect(url_for("quarantine.show", item_id=item.id))


@bp.post("/<int:item_id>/dismiss")
@role_required(Role.ADMIN)
def dismiss_item(item_id: int):
    item = db.session.get(QuarantinedItem, item_id) or abort(404)
    dismiss(item, by=current_user.name)
    db.session.commit()
    flash(_("Dismissed."), "success")
    return redirect(url_for("quarantine.index"))


@bp.get("/<int:item_id>/raw")
@role_required(Role.ADMIN)
def download(item_id: int):
    item = db.session.get(QuarantinedItem, item_id) or abort(404)
    return (
        item.raw,
        200,
        {
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="quarantined-{item.id}.bin"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def init_app(app: Flask) -> None:
    """Register the admin pages once (safe to call from several channels)."""
    if bp.name not in app.blueprints:
        app.register_blueprint(bp)
