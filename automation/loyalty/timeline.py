"""How points, tiers and referrals read on the contact timeline: one translated sentence each."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import ngettext

from helpdesk.crm.timeline import describe_actions
from helpdesk.models import AuditEvent


def _block_reason(code: str | None) -> str:
    if code == "self_referral":
        return _("they referred themselves")
    if code == "same_email":
        return _("both use the same email address")
    if code == "same_device":
        return _("both signed up from the same device")
    if code == "existing_customer":
        return _("the friend was already a customer")
    return _("it looked like abuse")


@describe_actions("points", "loyalty", "referral")
def describe(event: AuditEvent) -> str | None:
    """Say what a ledger, tier or referral entry records; counts in the right plural."""
    d = event.data or {}
    action = event.action
    points = int(d.get("points") or 0)
    n = abs(points)
    if action == "points.earned":
        return ngettext("Earned %(num)s point", "Earned %(num)s points", n)
    if action == "points.pending":
        return ngettext(
            "Earned %(num)s point, spendable after the return window",
            "Earned %(num)s points, spendable after the return window",
            n,
        )
    if action == "points.matured":
        return ngettext(
            "%(num)s pending point can now be spent", "%(num)s pending points can now be spent", n
        )
    if action == "points.spent":
        return ngettext("Spent %(num)s point", "Spent %(num)s points", n)
    if action == "points.expired":
        return ngettext("%(num)s point expired", "%(num)s points expired", n)
    if action == "points.reversed":
        if points > 0:
            return ngettext("%(num)s point given back", "%(num)s points given back", n)
        return ngettext("%(num)s point taken back", "%(num)s points taken back", n)
    if action == "loyalty.tier_changed":
        new = str(d.get("new") or "").title()
        if d.get("old"):
            return _(
                "Loyalty tier changed from %(old)s to %(new)s", old=str(d["old"]).title(), new=new
            )
        return _("Loyalty tier is now %(new)s", new=new)
    if action == "referral.code_created":
        return _("Referral code %(code)s created", code=d.get("code") or "")
    if action == "referral.recorded":
        return _("Referral recorded; both are rewarded after the first paid order")
    if action == "referral.blocked":
        return _("Referral blocked: %(why)s", why=_block_reason(d.get("reason")))
    return None
