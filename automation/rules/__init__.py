"""Rules: trigger + conditions + actions, versioned JSON, run on events and on a clock."""

from __future__ import annotations

from typing import Any

from flask import Flask


def runs_for_ticket(ticket_id: int, limit: int = 50) -> list[Any]:
    """The rule runs logged on a ticket, newest first (for the ticket page)."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from helpdesk.extensions import db

    from .models import RuleRun

    return list(
        db.session.scalars(
            select(RuleRun)
            .options(selectinload(RuleRun.rule))
            .where(RuleRun.ticket_id == ticket_id)
            .order_by(RuleRun.id.desc())
            .limit(limit)
        )
    )


def init_app(app: Flask) -> None:
    """Register the admin pages and the activities API; connect listeners and periodic jobs."""
    if "rapport.rules" in app.extensions:  # once per app
        return
    app.extensions["rapport.rules"] = True
    from helpdesk.extensions import csrf

    from . import listeners, models, timers, webhooks  # noqa: F401  (signals, jobs, tables)
    from .api import bp as api_bp
    from .views import bp as admin_bp

    app.register_blueprint(admin_bp)
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)  # token-authenticated, no cookies
    app.add_template_global(runs_for_ticket, "rule_runs_for_ticket")
