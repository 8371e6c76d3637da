"""Forms for the incentive policy pages; they parse and check input, operations do the rest.

The checks mirror ``policy.check_terms`` so each error lands beside its field; the
operation checks again and has the last word.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DecimalField,
    Field,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from helpdesk.crm.forms import choices

from .models import IncentivePolicy
from .policy import CONDITIONS, BudgetPeriod, RewardKind

KIND_LABELS = {
    RewardKind.PERCENTAGE: _l("Percentage off the next order"),
    RewardKind.FIXED: _l("Fixed amount off the next order"),
    RewardKind.FREE_SHIPPING: _l("Free shipping"),
    RewardKind.FREE_ITEM: _l("Free item"),
    RewardKind.STORE_CREDIT: _l("Store credit"),
    RewardKind.LOYALTY_POINTS: _l("Loyalty points"),
}
PERIOD_LABELS = {
    BudgetPeriod.MONTH: _l("per month"),
    BudgetPeriod.QUARTER: _l("per quarter"),
    BudgetPeriod.YEAR: _l("per year"),
}
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")

#: Form field → model field, for the fields both share under the same meaning.
POLICY_FIELDS = (
    "name",
    "description",
    "kind",
    "value",
    "currency",
    "valid_days",
    "valid_until",
    "minimum_order",
    "is_holder_only",
    "cap_count",
    "cap_window_days",
    "budget_amount",
    "budget_period",
    "approval_threshold",
    "cost_estimate",
    "restores_on_refund",
    "conditions",
    "options",
    "is_active",
)

_MONEY = [Optional(), NumberRange(min=0, message=_l("Must not be negative."))]


def _json_object(field: Field) -> dict[str, Any]:
    text = (field.data or "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            _l("Not valid JSON: %(error)s (line %(line)s)", error=exc.msg, line=exc.lineno)
        ) from None
    if not isinstance(value, dict):
        raise ValidationError(_l('Write a JSON object, like {"min_reopens": 1}.'))
    return value


def valid_until_as_datetime(day: date | None) -> datetime | None:
    """A date typed by an admin means 'valid through that day' (UTC)."""
    return None if day is None else datetime.combine(day + timedelta(days=1), time.min, UTC)


def valid_until_as_date(moment: datetime | None) -> date | None:
    """The last day a ``valid_until`` moment still allows."""
    return None if moment is None else (moment - timedelta(microseconds=1)).astimezone(UTC).date()


class PolicyForm(FlaskForm):
    """Every term of a policy except its key (which never changes)."""

    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=5000)])
    kind = SelectField(
        _l("Reward"),
        choices=choices((kind.value, label) for kind, label in KIND_LABELS.items()),
        default=RewardKind.PERCENTAGE.value,
    )
    value = DecimalField(
        _l("Value"),
        places=2,
        validators=[Optional(), NumberRange(min=0, message=_l("Must not be negative."))],
    )
    currency = StringField(_l("Currency"), validators=[Optional(), Length(max=8)])
    valid_days = IntegerField(
        _l("Valid for (days after issue)"),
        validators=[Optional(), NumberRange(min=1, message=_l("At least one day."))],
    )
    valid_until = DateField(_l("Valid until (date)"), validators=[Optional()])
    minimum_order = DecimalField(_l("Minimum order"), places=2, validators=_MONEY)
    is_holder_only = RadioField(
        _l("Who may use the code"),
        choices=choices(
            [
                ("holder", _l("Only the customer it was given to")),
                ("shareable", _l("Anyone with the code (shareable)")),
            ]
        ),
        default="holder",
    )
    cap_count = IntegerField(
        _l("At most (grants per customer)"),
        validators=[Optional(), NumberRange(min=1, message=_l("At least one."))],
    )
    cap_window_days = IntegerField(
        _l("Within (days)"),
        validators=[Optional(), NumberRange(min=1, message=_l("At least one day."))],
    )
    budget_amount = DecimalField(_l("Budget"), places=2, validators=_MONEY)
    budget_period = SelectField(
        _l("Budget period"),
        choices=choices(
            [("", _l("No budget"))] + [(p.value, label) for p, label in PERIOD_LABELS.items()]
        ),
        default="",
    )
    approval_threshold = DecimalField(_l("Approval above (cost)"), places=2, validators=_MONEY)
    cost_estimate = DecimalField(_l("Estimated cost per grant"), places=2, validators=_MONEY)
    restores_on_refund = BooleanField(
        _l("After a refund the code becomes usable again"), default=True
    )
    conditions = TextAreaField(_l("Conditions (JSON)"), validators=[Length(max=20000)])
    options = TextAreaField(_l("Shop options (JSON)"), validators=[Length(max=20000)])
    is_active = BooleanField(_l("Active (rules may grant it)"), default=True)

    # -- field checks (one error beside each field)

    def validate(self, extra_validators: Any = None) -> bool:
        """Check each field, then the rules that tie fields together (an empty field skips
        its own validators, so those live here); errors go beside the field concerned."""
        valid = super().validate(extra_validators)
        kind = self.kind.data
        checks = [
            (self.value, self._value_error(kind)),
            (self.currency, self._currency_error(kind)),
            (
                self.cap_window_days,
                _l("A cap needs both a number of grants and a window in days.")
                if (self.cap_count.data is None) != (self.cap_window_days.data is None)
                else None,
            ),
            (
                self.budget_period,
                _l("A budget needs both an amount and a period.")
                if (self.budget_amount.data is None) != (not self.budget_period.data)
                else None,
            ),
        ]
        for field, error in checks:
            if error is not None and not field.errors:
                field.errors = [*field.errors, error]
                valid = False
        return valid

    def _value_error(self, kind: str) -> Any:
        value = self.value.data
        if self.value.errors:
            return None
        if value is None:
            if kind in (RewardKind.FREE_SHIPPING.value, RewardKind.FREE_ITEM.value):
                return None
            return _l("Enter a value.")
        if kind == RewardKind.PERCENTAGE.value and not Decimal(0) < value <= 100:
            return _l("A percentage is above 0 and at most 100.")
        if kind in (RewardKind.FIXED.value, RewardKind.STORE_CREDIT.value) and value <= 0:
            return _l("The amount must be above zero.")
        if kind == RewardKind.LOYALTY_POINTS.value and (
            value <= 0 or value != value.to_integral_value()
        ):
            return _l("Points are a whole number above zero.")
        return None

    def _currency_error(self, kind: str) -> Any:
        self.currency.data = (self.currency.data or "").strip().upper() or None
        if self.currency.errors:
            return None
        if self.currency.data and not CURRENCY_PATTERN.match(self.currency.data):
            return _l("Three letters, like EUR or USD.")
        if self.currency.data is None and kind in (
            RewardKind.FIXED.value,
            RewardKind.STORE_CREDIT.value,
        ):
            return _l("An amount off or store credit needs a currency.")
        return None

    def validate_conditions(self, field: Field) -> None:
        value = _json_object(field)
        unknown = sorted(set(value) - set(CONDITIONS))
        if unknown:
            raise ValidationError(_l("Unknown condition(s): %(names)s.", names=", ".join(unknown)))

    def validate_options(self, field: Field) -> None:
        _json_object(field)

    # -- conversion

    def terms(self) -> dict[str, Any]:
        """The model's fields as the operations take them."""
        kind = RewardKind(self.kind.data)
        value = self.value.data if self.value.data is not None else Decimal("0")
        return {
            "name": self.name.data.strip(),
            "description": (self.description.data or "").strip(),
            "kind": kind,
            "value": Decimal(value),
            "currency": self.currency.data or None,
            "valid_days": self.valid_days.data,
            "valid_until": valid_until_as_datetime(self.valid_until.data),
            "minimum_order": self.minimum_order.data,
            "is_holder_only": self.is_holder_only.data != "shareable",
            "cap_count": self.cap_count.data,
            "cap_window_days": self.cap_window_days.data,
            "budget_amount": self.budget_amount.data,
            "budget_period": BudgetPeriod(self.budget_period.data)
            if self.budget_period.data
            else None,
            "approval_threshold": self.approval_threshold.data,
            "cost_estimate": self.cost_estimate.data,
            "restores_on_refund": bool(self.restores_on_refund.data),
            "conditions": _json_object(self.conditions),
            "options": _json_object(self.options),
            "is_active": bool(self.is_active.data),
        }

    def fill_from(self, policy: IncentivePolicy) -> None:
        """Show ``policy``'s terms in the form (for editing)."""
        self.name.data = policy.name
        self.description.data = policy.description
        self.kind.data = policy.kind.value
        self.value.data = policy.value
        self.currency.data = policy.currency or ""
        self.valid_days.data = policy.valid_days
        self.valid_until.data = valid_until_as_date(policy.valid_until)
        self.minimum_order.data = policy.minimum_order
        self.is_holder_only.data = "holder" if policy.is_holder_only else "shareable"
        self.cap_count.data = policy.cap_count
        self.cap_window_days.data = policy.cap_window_days
        self.budget_amount.data = policy.budget_amount
        self.budget_period.data = policy.budget_period.value if policy.budget_period else ""
        self.approval_threshold.data = policy.approval_threshold
        self.cost_estimate.data = policy.cost_estimate
        self.restores_on_refund.data = policy.restores_on_refund
        self.conditions.data = _pretty(policy.conditions)
        self.options.data = _pretty(policy.options)
        self.is_active.data = policy.is_active


def _pretty(value: dict[str, Any] | None) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) if value else ""


class NewPolicyForm(PolicyForm):
    """A policy's first version: its terms and the key rules refer to it by."""

    key = StringField(_l("Key"), validators=[DataRequired(), Length(max=64)])

    def validate_key(self, field: Field) -> None:
        field.data = (field.data or "").strip().lower()
        if not KEY_PATTERN.match(field.data):
            raise ValidationError(
                _l("Lowercase letters, digits, - and _, starting with a letter or digit.")
            )


class ToggleForm(FlaskForm):
    """Switch a policy on or off (a new version with only that changed)."""

    is_active = SelectField(choices=choices([("1", "on"), ("0", "off")]))


def changed_terms(policy: IncentivePolicy, terms: dict[str, Any]) -> dict[str, Any]:
    """Only the terms that differ from ``policy`` (a date typed as before keeps its time)."""
    changes = {}
    for name, value in terms.items():
        current = getattr(policy, name)
        if name == "valid_until" and valid_until_as_date(current) == valid_until_as_date(value):
            continue
        if isinstance(current, Decimal) and value is not None:
            if Decimal(current) == Decimal(value):
                continue
        elif name in ("conditions", "options"):
            if (current or {}) == value:
                continue
        elif current == value:
            continue
        changes[name] = value
    return changes
