"""The customer portal: magic-link sign-in, a customer's own tickets, replies and rewards.

``init_app(app)`` wires it into an app: its settings, the ``portal`` blueprint at
``/portal``, the ``portal`` channel and the portal's language choice. It is safe
to call twice.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from flask import Flask

__all__ = ["init_app"]

#: Settings and their defaults; read from the environment once, at init_app.
SETTINGS: dict[str, Any] = {
    # Where a referral link points; ?ref=CODE is added. Empty means RAPPORT_PUBLIC_URL.
    "RAPPORT_SHOP_URL": "",
    # How long a sign-in link works.
    "RAPPORT_PORTAL_LINK_MINUTES": 30,
    # How long a portal session lasts after signing in.
    "RAPPORT_PORTAL_SESSION_HOURS": 12,
    # Sign-in link requests: per address asked for, and per client address.
    "RAPPORT_PORTAL_LINKS_PER_ADDRESS": "5/hour",
    "RAPPORT_PORTAL_LINKS_PER_IP": "20/hour",
}


def init_app(app: Flask) -> None:
    """Register the portal's settings, blueprint, channel and language choice on ``app``."""
    for name, default in SETTINGS.items():
        value = os.environ.get(name)
        if value is None:
            app.config.setdefault(name, default)
        else:
            app.config.setdefault(name, int(value) if isinstance(default, int) else value)

    import channels.portal  # noqa: F401  (registers the "portal" channel)
    from helpdesk.portal import operations  # noqa: F401  (connects the sign-in link listener)
    from helpdesk.portal.auth import install_locale_selector

    if "portal" not in app.blueprints:
        from helpdesk.portal.views import bp

        app.register_blueprint(bp)
    install_locale_selector(app)
