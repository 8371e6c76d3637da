"""SLA policies on business-hours calendars: due times per ticket, pauses, breach triggers."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Connect the clock listeners and the breach check, and register the admin pages."""
    if "rapport.sla" in app.extensions:  # once per app
        return
    app.extensions["rapport.sla"] = True
    from . import (
        listeners,  # noqa: F401  (clock listeners, periodic breach check)
        models,  # noqa: F401  (tables)
    )
    from .views import bp

    app.register_blueprint(bp)
