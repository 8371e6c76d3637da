"""Incentives: versioned policies, bounded idempotent grants, vouchers, redemption.

``init_app`` registers the approval page, the policy and report admin pages and the
contact-panel helper; the models are imported here so they join the shared metadata.
"""

from __future__ import annotations

from flask import Flask

from automation.loyalty import models as _loyalty_models  # noqa: F401  (points grants)

from . import models  # noqa: F401  (tables on db.metadata)


def init_app(app: Flask) -> None:
    """Register the approval queue, the admin pages (policies, report) and the template
    helper for the contact panel."""
    from . import jobs, merge, timeline  # noqa: F401  (expiry job; merge hook; timeline words)
    from .admin_views import bp as admin_bp
    from .views import bp, contact_incentives

    for blueprint in (bp, admin_bp):
        if blueprint.name not in app.blueprints:
            app.register_blueprint(blueprint)
    app.jinja_env.globals["contact_incentives"] = contact_incentives
