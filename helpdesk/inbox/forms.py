"""Forms of the inbox. Every one carries a CSRF token (Flask-WTF)."""

from __future__ import annotations

import uuid
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from sqlalchemy import select
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp, ValidationError

from helpdesk.extensions import db
from helpdesk.models import Priority, Team, TicketStatus, User

try:  # WTForms 3.3 deprecates (value, label) tuples in favour of SelectChoice
    from wtforms import SelectChoice
except ImportError:  # pragma: no cover - older WTForms
    SelectChoice = None


def choice(value: str, label: Any) -> Any:
    """One option of a select, in the shape this WTForms prefers."""
    return SelectChoice(value, label) if SelectChoice is not None else (value, label)


_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def status_choices() -> list[Any]:
    return [
        choice(TicketStatus.NEW.value, _l("New")),
        choice(TicketStatus.OPEN.value, _l("Open")),
        choice(TicketStatus.PENDING.value, _l("Pending")),
        choice(TicketStatus.SOLVED.value, _l("Solved")),
        choice(TicketStatus.CLOSED.value, _l("Closed")),
    ]


def priority_choices() -> list[Any]:
    return [
        choice(Priority.LOW.value, _l("Low")),
        choice(Priority.NORMAL.value, _l("Normal")),
        choice(Priority.HIGH.value, _l("High")),
        choice(Priority.URGENT.value, _l("Urgent")),
    ]


def agent_choices() -> list[Any]:
    users = db.session.scalars(
        select(User).where(User.is_active_user.is_(True)).order_by(User.name, User.id)
    )
    return [choice("", _l("Unassigned")), *(choice(str(u.id), u.name) for u in users)]


def team_choices() -> list[Any]:
    teams = db.session.scalars(select(Team).order_by(Team.name))
    return [choice("", _l("No team")), *(choice(str(t.id), t.name) for t in teams)]


class _MessageForm(FlaskForm):
    body = TextAreaField(validators=[Length(max=100_000)])
    #: A fresh uuid4 per rendered form: a double submit replays the same key.
    idempotency_key = HiddenField(validators=[Optional(), Regexp(_UUID)])
    attachments = MultipleFileField(_l("Attach files"))

    def validate_body(self, field: Any) -> None:
        files = [f for f in (self.attachments.data or []) if getattr(f, "filename", "")]
        if not (field.data or "").strip() and not files:
            raise ValidationError(_l("Write something first."))


class ReplyForm(_MessageForm):
    body = TextAreaField(_l("Reply"), validators=[Length(max=100_000)])
    status_after = SelectField(
        _l("Then set status"),
        choices=[
            choice("", _l("Keep status")),
            choice(TicketStatus.PENDING.value, _l("Pending")),
            choice(TicketStatus.SOLVED.value, _l("Solved")),
        ],
        default="",
    )


class NoteForm(_MessageForm):
    body = TextAreaField(_l("Internal note"), validators=[Length(max=100_000)])


class StatusForm(FlaskForm):
    status = SelectField(_l("Status"), choices=status_choices)


class PriorityForm(FlaskForm):
    priority = SelectField(_l("Priority"), choices=priority_choices)


class AssignForm(FlaskForm):
    assignee = SelectField(_l("Agent"), choices=agent_choices, default="")
    team = SelectField(_l("Team"), choices=team_choices, default="")


class TagsForm(FlaskForm):
    tags = StringField(_l("Tags"), validators=[Length(max=1000)])


class MergeForm(FlaskForm):
    target = IntegerField(
        _l("Merge into ticket #"), validators=[DataRequired(), NumberRange(min=1)]
    )


class SavedViewForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    is_shared = BooleanField(_l("Share with the team"))
    view = HiddenField()
    channel = HiddenField()
    tag = HiddenField()
    team = HiddenField()
    assignee = HiddenField()
    q = HiddenField()


BULK_ACTIONS = ("assign", "team", "tag", "status", "merge")


class BulkForm(FlaskForm):
    action = SelectField(choices=[choice(a, a) for a in BULK_ACTIONS])
    assignee = SelectField(_l("Agent"), choices=agent_choices, default="", validate_choice=False)
    team = SelectField(_l("Team"), choices=team_choices, default="", validate_choice=False)
    status = SelectField(_l("Status"), choices=status_choices, validate_choice=False)
    tag = StringField(_l("Tag"), validators=[Length(max=64)])
    next = HiddenField()
