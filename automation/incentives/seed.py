"""Example policies for the demo workspace and new installations."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from flask import current_app

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import utcnow

from .models import IncentivePolicy
from .operations import create_policy, goodwill_policy
from .policy import BudgetPeriod, RewardKind

SEED = Actor.system("seed")


def _examples(currency: str) -> list[dict[str, Any]]:
    return [
        {
            "key": "apology-discount",
            "name": "Apology discount",
            "description": "10% off the next order after a ticket that went badly.",
            "kind": RewardKind.PERCENTAGE,
            "value": Decimal("10"),
            "valid_days": 60,
            "cap_count": 2,
            "cap_window_days": 90,
            "cost_estimate": Decimal("6.00"),
            "budget_amount": Decimal("500"),
            "budget_period": BudgetPeriod.MONTH,
            "conditions": {"triggers": ["ticket.closed"], "min_reopens": 1},
        },
        {
            "key": "feedback-voucher",
            "name": "Feedback voucher",
            "description": "5 off for answering a satisfaction survey.",
            "kind": RewardKind.FIXED,
            "value": Decimal("5"),
            "currency": currency,
            "valid_days": 90,
            "minimum_order": Decimal("25"),
            "cap_count": 1,
            "cap_window_days": 30,
            "budget_amount": Decimal("300"),
            "budget_period": BudgetPeriod.MONTH,
            "conditions": {"triggers": ["survey.answered"], "has_survey_answer": True},
        },
        {
            "key": "paid-order-bonus",
            "name": "Bonus points per paid order",
            "description": "50 extra points on a paid order of 100 or more.",
            "kind": RewardKind.LOYALTY_POINTS,
            "value": Decimal("50"),
            "conditions": {"triggers": ["order.recorded"], "min_order_total": "100"},
        },
        {
            "key": "long-standing-customer",
            "name": "Long-standing customer bonus",
            "description": "Store credit for customers with us for two years and five orders.",
            "kind": RewardKind.STORE_CREDIT,
            "value": Decimal("15"),
            "currency": currency,
            "valid_days": 180,
            "cap_count": 1,
            "cap_window_days": 365,
            "conditions": {"min_customer_days": 730, "min_paid_orders": 5},
        },
        {
            "key": "bug-report-reward",
            "name": "Confirmed bug report reward",
            "description": "Thanks for a bug report our team confirmed.",
            "kind": RewardKind.FIXED,
            "value": Decimal("20"),
            "currency": currency,
            "valid_days": 120,
            "approval_threshold": Decimal("15"),
            "conditions": {"tags_any": ["bug-confirmed"]},
        },
        {
            "key": "review-reward",
            "name": "Approved review reward",
            "description": "Free shipping on the next order for a review we published.",
            "kind": RewardKind.FREE_SHIPPING,
            "value": Decimal("0"),
            "valid_days": 60,
            "cost_estimate": Decimal("4.90"),
            "cap_count": 1,
            "cap_window_days": 180,
            "conditions": {"triggers": ["review.approved"]},
        },
        {
            "key": "second-order-voucher",
            "name": "Second-order voucher",
            "description": "15% off a second order within 30 days of the first (limited time).",
            "kind": RewardKind.PERCENTAGE,
            "value": Decimal("15"),
            "valid_days": 30,
            "valid_until": utcnow() + timedelta(days=120),
            "cost_estimate": Decimal("9.00"),
            "cap_count": 1,
            "cap_window_days": 3650,
            "conditions": {"paid_orders_equal": 1, "within_days_of_first_order": 30},
        },
        {
            "key": "fifth-purchase-discount",
            "name": "Discount after the fifth purchase",
            "description": "10 off once a customer's fifth order is paid.",
            "kind": RewardKind.FIXED,
            "value": Decimal("10"),
            "currency": currency,
            "valid_days": 90,
            "cap_count": 1,
            "cap_window_days": 3650,
            "conditions": {"paid_orders_equal": 5},
        },
    ]


def seed_incentive_examples(currency: str | None = None) -> list[IncentivePolicy]:
    """Create the example policies (and the goodwill policy) that do not exist yet."""
    from automation.loyalty.operations import seed_tiers

    currency = currency or current_app.config.get("RAPPORT_DEFAULT_CURRENCY", "EUR")
    created = []
    existing = set(db.session.scalars(db.select(IncentivePolicy.key)))
    for spec in _examples(currency):
        if spec["key"] in existing:
            continue
        spec = dict(spec)
        created.append(
            create_policy(
                actor=SEED,
                key=spec.pop("key"),
                name=spec.pop("name"),
                kind=spec.pop("kind"),
                value=spec.pop("value"),
                **spec,
            )
        )
    goodwill_policy(currency)
    seed_tiers()
    db.session.flush()
    return created
