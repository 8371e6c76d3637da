"""Forms for the admin pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    Field,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, EqualTo, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from helpdesk.admin.operations import APPLIES_TO, ATTRIBUTE_TYPES
from helpdesk.crm.forms import choices as choices
from helpdesk.models import Role
from helpdesk.operations.users import MIN_PASSWORD, SCOPES

ROLE_LABELS = {
    Role.ADMIN: _l("Admin"),
    Role.AGENT: _l("Agent"),
    Role.READ_ONLY: _l("Read-only"),
}
TYPE_LABELS = {
    "text": _l("Text"),
    "number": _l("Number"),
    "boolean": _l("Yes / no"),
    "date": _l("Date"),
    "choice": _l("Choice from a list"),
}
APPLIES_LABELS = {"contact": _l("Contacts"), "ticket": _l("Tickets")}


class MultiCheckboxField(SelectMultipleField):
    """Several choices shown as checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


_ROLE_CHOICES = [
    (role.value, ROLE_LABELS[role]) for role in (Role.AGENT, Role.ADMIN, Role.READ_ONLY)
]


def _email(form: FlaskForm, field: Field) -> None:
    value = (field.data or "").strip()
    local, _, domain = value.partition("@")
    if not local or "." not in domain or " " in value:
        raise ValidationError(_l("Enter an email address, like name@example.com."))


class UserCreateForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    email = StringField(_l("Email"), validators=[DataRequired(), Length(max=320), _email])
    role = SelectField(_l("Role"), choices=choices(_ROLE_CHOICES), default=Role.AGENT.value)
    password = PasswordField(
        _l("Password"),
        validators=[
            DataRequired(),
            Length(min=MIN_PASSWORD, message=_l("At least %(n)s characters.", n=MIN_PASSWORD)),
        ],
    )


class UserUpdateForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    role = SelectField(_l("Role"), choices=choices(_ROLE_CHOICES))
    is_active = BooleanField(_l("Can sign in"))
    is_away = BooleanField(_l("Away (skipped by round-robin assignment)"))


class PasswordForm(FlaskForm):
    password = PasswordField(
        _l("New password"),
        validators=[
            DataRequired(),
            Length(min=MIN_PASSWORD, message=_l("At least %(n)s characters.", n=MIN_PASSWORD)),
        ],
    )
    confirm = PasswordField(
        _l("Repeat the new password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The two passwords differ."))],
    )


class TeamForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    members = MultiCheckboxField(_l("Members"), coerce=int)
    round_robin = BooleanField(_l("Assign new tickets to members in turn (round-robin)"))


class TeamUpdateForm(FlaskForm):
    members = MultiCheckboxField(_l("Members"), coerce=int)
    round_robin = BooleanField(_l("Assign new tickets to members in turn (round-robin)"))


class CannedResponseForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    shortcut = StringField(_l("Shortcut"), validators=[DataRequired(), Length(max=65)])
    body = TextAreaField(_l("Body"), validators=[DataRequired(), Length(max=20000)])


class AttributeForm(FlaskForm):
    applies_to = SelectField(
        _l("For"), choices=choices((v, APPLIES_LABELS[v]) for v in APPLIES_TO), default="contact"
    )
    key = StringField(_l("Key"), validators=[DataRequired(), Length(max=64)])
    label = StringField(_l("Label"), validators=[DataRequired(), Length(max=120)])
    type = SelectField(
        _l("Type"), choices=choices((v, TYPE_LABELS[v]) for v in ATTRIBUTE_TYPES), default="text"
    )
    options = TextAreaField(_l("Options"), validators=[Optional(), Length(max=5000)])

    def validate_options(self, field: Field) -> None:
        if self.type.data == "choice" and not option_lines(field.data):
            raise ValidationError(_l("List the choices, one per line."))


class AttributeUpdateForm(FlaskForm):
    label = StringField(_l("Label"), validators=[DataRequired(), Length(max=120)])
    options = TextAreaField(_l("Options"), validators=[Optional(), Length(max=5000)])


class TokenForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    scopes = MultiCheckboxField(
        _l("Scopes"),
        choices=choices((s, s) for s in SCOPES),
        validators=[DataRequired(_l("Pick at least one scope."))],
    )


def option_lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]
