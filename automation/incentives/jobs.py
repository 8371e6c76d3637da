"""Periodic housekeeping for vouchers."""

from __future__ import annotations

from helpdesk import jobs
from helpdesk.extensions import db

from .operations import expire_vouchers, forget_old_guesses


@jobs.periodic(minute="*/15")
def expire_vouchers_job() -> int:
    """Mark vouchers past their date as expired and drop old guess counters."""
    expired = expire_vouchers()
    forget_old_guesses()
    db.session.commit()
    return expired
