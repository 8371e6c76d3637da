"""CSAT and NPS surveys: sent after a ticket is solved, answered through one-time signed links."""

from __future__ import annotations

import os

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the public answer page and the after-solve listener."""
    if "rapport.surveys" in app.extensions:  # once per app
        return
    app.extensions["rapport.surveys"] = True
    from helpdesk.extensions import csrf

    from . import (
        listeners,  # noqa: F401  (connects the after-solve survey)
        models,  # noqa: F401  (tables)
    )
    from .views import bp

    app.config.setdefault("RAPPORT_SURVEY_ON_SOLVE", os.environ.get("RAPPORT_SURVEY_ON_SOLVE", ""))
    app.register_blueprint(bp)
    # The answer form is posted by customers without a session; the signed token is the credential.
    csrf.exempt(bp)
