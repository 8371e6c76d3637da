"""Forms for the CRM pages; they parse and check input, operations do the rest."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import BooleanField, Field, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from channels.base import IdentityKind
from helpdesk.models import Company, CustomAttribute
from helpdesk.operations.contacts import OperationError, coerce_attributes


def choices(pairs: Iterable[tuple[Any, Any]]) -> list[SelectChoice]:
    """Build WTForms choices from (value, label) pairs; labels may be lazy strings."""
    return [SelectChoice(value=value, label=label) for value, label in pairs]


IDENTITY_LABELS = {
    IdentityKind.EMAIL: _l("Email"),
    IdentityKind.PHONE: _l("Phone"),
    IdentityKind.WHATSAPP: _l("WhatsApp"),
    IdentityKind.TELEGRAM: _l("Telegram"),
    IdentityKind.WIDGET: _l("Web chat visitor"),
    IdentityKind.API: _l("API"),
}


class ContactForm(FlaskForm):
    name = StringField(_l("Name"), validators=[Length(max=200)])
    company_id = SelectField(_l("Company"), coerce=int, default=0)
    locale = SelectField(_l("Language"), default="")

    def set_choices(self, companies: list[Company], locales: list[str]) -> ContactForm:
        self.company_id.choices = choices(
            [(0, _l("No company")), *((c.id, c.name) for c in companies)]
        )
        self.locale.choices = choices([("", _l("Not set")), *((code, code) for code in locales)])
        return self


class NotesForm(FlaskForm):
    notes = TextAreaField(_l("Notes"), validators=[Length(max=20000)])


class IdentityForm(FlaskForm):
    kind = SelectField(
        _l("Channel"),
        choices=choices((k.value, label) for k, label in IDENTITY_LABELS.items()),
        default=IdentityKind.EMAIL.value,
    )
    value = StringField(_l("Address"), validators=[DataRequired(), Length(max=320)])
    display_name = StringField(_l("Name on that channel"), validators=[Length(max=200)])

    def validate_value(self, field: Field) -> None:
        value = (field.data or "").strip()
        kind = IdentityKind(self.kind.data)
        if kind is IdentityKind.EMAIL and ("@" not in value or value.startswith("@")):
            raise ValidationError(_l("Enter an email address, like name@example.com."))
        if kind in (IdentityKind.PHONE, IdentityKind.WHATSAPP) and not any(
            ch.isdigit() for ch in value
        ):
            raise ValidationError(_l("Enter a phone number with its country code, like +30…"))


class ConfirmForm(FlaskForm):
    """A button that only needs the CSRF token: merge, delete, revoke."""


class CompanyForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    domain = StringField(_l("Web domain"), validators=[Optional(), Length(max=255)])


class ImportForm(FlaskForm):
    kind = RadioField(
        _l("What the file holds"),
        choices=choices([("contacts", _l("Contacts")), ("orders", _l("Orders"))]),
        default="contacts",
    )
    file = FileField(
        _l("CSV file"),
        validators=[
            FileRequired(_l("Choose a CSV file to upload.")),
            FileAllowed(["csv", "txt"], _l("Upload a .csv file.")),
        ],
    )


def _check_attribute(applies_to: str, key: str) -> Any:
    def check(form: FlaskForm, field: Field) -> None:
        try:
            coerce_attributes(applies_to, {key: field.data})
        except OperationError as exc:
            raise ValidationError(str(exc)) from None

    return check


def attributes_form(
    definitions: list[CustomAttribute], values: dict[str, Any], **kwargs: Any
) -> FlaskForm:
    """Build a form with one field per custom attribute definition, typed by its ``type``."""

    class AttributesForm(FlaskForm):
        pass

    for d in definitions:
        check = _check_attribute(d.applies_to, d.key)
        current = values.get(d.key)
        field: Field
        if d.type == "boolean":
            field = BooleanField(d.label, default=bool(current))
        elif d.type == "choice":
            field = SelectField(
                d.label,
                choices=choices([("", "—"), *((o, o) for o in d.options)]),
                default=current or "",
                validate_choice=False,  # coerce_attributes says what is wrong, in one voice
                validators=[check],
            )
        else:
            render_kw = {"type": "date"} if d.type == "date" else {}
            if d.type == "number":
                render_kw = {"inputmode": "decimal"}
            field = StringField(
                d.label,
                default="" if current is None else str(current),
                validators=[check],
                render_kw=render_kw,
            )
        setattr(AttributesForm, d.key, field)
    return AttributesForm(prefix="attr", **kwargs)


def attribute_values(form: FlaskForm, definitions: list[CustomAttribute]) -> dict[str, Any]:
    """Return the submitted values keyed by attribute key."""
    return {d.key: form[d.key].data for d in definitions}
