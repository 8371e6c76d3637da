"""Loyalty: the points ledger, pending and expiring lots, tiers, refer-a-friend.

``init_app`` connects the order listener (points per paid order, reversed on
refund) and declares the periodic jobs.
"""

from __future__ import annotations

from flask import Flask

from . import models  # noqa: F401  (tables on db.metadata)


def init_app(app: Flask) -> None:
    """Connect the order listener and the periodic jobs."""
    from . import jobs, merge, timeline  # noqa: F401  (merge hook; timeline sentences)

    jobs.connect()
