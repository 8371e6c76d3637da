"""Automation: rules, surveys, SLAs, incentives and loyalty; each subpackage hooks itself in."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Attach every automation subpackage to ``app``."""
    from automation import incentives, loyalty, rules, shop, sla, surveys

    rules.init_app(app)
    surveys.init_app(app)
    sla.init_app(app)
    incentives.init_app(app)
    loyalty.init_app(app)
    shop.init_app(app)

    from automation.shop.openapi import register as describe_api

    describe_api()
