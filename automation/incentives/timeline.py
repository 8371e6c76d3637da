"""How grants and vouchers read on the contact timeline: one translated sentence each."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import format_currency, format_percent, ngettext
from flask_babel import gettext as _

from helpdesk.crm.timeline import describe_actions
from helpdesk.models import AuditEvent

from .policy import RewardKind


def _number(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def describe_reward(data: dict[str, Any]) -> str:
    """The reward an audit entry names, as a customer would read it (10 %, €5.00, 50 points)."""
    value = _number(data.get("value"))
    kind = data.get("kind")
    if value is None:
        return str(data.get("policy") or "")
    if kind == RewardKind.PERCENTAGE.value:
        return str(format_percent(value / 100))
    if kind == RewardKind.LOYALTY_POINTS.value:
        return ngettext("%(num)s point", "%(num)s points", int(value))
    if kind == RewardKind.FREE_SHIPPING.value:
        return _("Free shipping")
    if kind == RewardKind.FREE_ITEM.value:
        return _("Free item")
    if data.get("currency"):
        return str(format_currency(value, data["currency"]))
    return str(value)


def _refusal(code: str | None) -> str:
    if code == "cap_reached":
        return _("the customer reached the limit for this reward")
    if code == "budget_exhausted":
        return _("the budget for this reward is spent")
    return _("the policy does not allow it")


@describe_actions("incentive", "voucher")
def describe(event: AuditEvent) -> str | None:
    """Say what a grant or voucher entry records; None for actions not shown to agents."""
    d = event.data or {}
    action = event.action
    if action == "incentive.issued":
        return _("Reward granted: %(reward)s", reward=describe_reward(d))
    if action == "incentive.pending_approval":
        return _("Reward waiting for approval: %(reward)s", reward=describe_reward(d))
    if action == "incentive.approved":
        return _("Reward approved")
    if action == "incentive.rejected":
        return _("Reward rejected")
    if action == "incentive.refused":
        return _("No reward given: %(why)s", why=_refusal(d.get("refusal")))
    if action == "voucher.sent":
        return _("Voucher sent to the customer")
    if action == "voucher.redeemed":
        return _(
            "Voucher %(code)s used on order %(order)s",
            code=d.get("code") or "",
            order=d.get("order_ref") or "—",
        )
    if action == "voucher.redemption_reversed":
        if d.get("outcome") == "restored":
            return _("Order refunded: the voucher can be used again")
        return _("Order refunded: the voucher stays void")
    if action == "voucher.voided":
        return _("Voucher voided")
    if action == "voucher.expired":
        return _("Voucher expired")
    if action == "voucher.pushed_to_shop":
        return _("Voucher created in the %(shop)s shop", shop=str(d.get("shop") or "").title())
    return None
