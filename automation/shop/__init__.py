"""Shops: the /api/v1/shop blueprint and the adapters that push codes into Shopify and
WooCommerce when a voucher is issued."""

from __future__ import annotations

import os

from flask import Flask

#: Read from the environment unless the app's config sets them.
SETTINGS = (
    "RAPPORT_SHOPIFY_URL",
    "RAPPORT_SHOPIFY_TOKEN",
    "RAPPORT_SHOPIFY_API_VERSION",
    "RAPPORT_WOOCOMMERCE_URL",
    "RAPPORT_WOOCOMMERCE_KEY",
    "RAPPORT_WOOCOMMERCE_SECRET",
)


def init_app(app: Flask) -> None:
    """Register the shop API (token-authenticated, so no CSRF) and the voucher push."""
    from helpdesk.extensions import csrf

    from . import adapters
    from .api import bp

    for name in SETTINGS:
        app.config.setdefault(name, os.environ.get(name) or None)
    if bp.name not in app.blueprints:
        app.register_blueprint(bp)
        csrf.exempt(bp)
    adapters.connect()
