"""The agent inbox (placeholder until the inbox is built out)."""

from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import select

from helpdesk.auth.access import role_required
from helpdesk.extensions import db
from helpdesk.models import Role, Ticket

bp = Blueprint("inbox", __name__)


@bp.route("/")
@role_required(Role.READ_ONLY)
def index():  # type: ignore[no-untyped-def]
    tickets = db.session.scalars(
        select(Ticket).order_by(Ticket.last_activity_at.desc(), Ticket.id.desc()).limit(50)
    ).all()
    return render_template("inbox/index.html", tickets=tickets)
