"""The agent inbox: views and counts, the ticket list, the conversation, and the actions on it.

Views are thin: parse, authorise, call an operation, commit, respond. Reading
needs a sign-in of any role; changing anything needs at least ``Role.AGENT``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_timedelta, ngettext
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from helpdesk.actors import Actor
from helpdesk.auth.access import role_required
from helpdesk.extensions import db
from helpdesk.models import (
    CannedResponse,
    Contact,
    CustomAttribute,
    Message,
    Priority,
    Role,
    Tag,
    Team,
    Ticket,
    TicketStatus,
    User,
    utcnow,
)
from helpdesk.operations.contacts import OperationError
from helpdesk.operations.messages import Upload, add_note, reply_to_ticket
from helpdesk.operations.saved_views import (
    create_saved_view,
    delete_saved_view,
    get_visible_saved_view,
    visible_saved_views,
)
from helpdesk.operations.tickets import (
    add_tags,
    assign_ticket,
    get_ticket,
    mark_read,
    merge_tickets,
    set_priority,
    set_status,
    set_tags,
    set_ticket_attributes,
)

from . import queries
from .canned import render_canned
from .forms import (
    AssignForm,
    BulkForm,
    MergeForm,
    NoteForm,
    PriorityForm,
    ReplyForm,
    SavedViewForm,
    StatusForm,
    TagsForm,
    new_idempotency_key,
)
from .queries import ListFilters

bp = Blueprint("inbox", __name__)

BULK_LIMIT = 200
_LIST_KEYS = ("view", "channel", "tag", "team", "assignee", "q", "saved")


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"has_endpoint": _has_endpoint, "ago": _ago, "Role": Role}


def _has_endpoint(name: str) -> bool:
    return name in current_app.view_functions


def _ago(moment: Any) -> str:
    if moment is None:
        return ""
    return format_timedelta(moment - utcnow(), granularity="minute", add_direction=True)


def _user() -> User:
    return current_user._get_current_object()


def _actor() -> Actor:
    return Actor.for_user(_user())


# ------------------------------------------------------------------ lists


def _list_args(source: Any = None) -> dict[str, Any]:
    """The list's query-string parameters, to carry from page to page."""
    source = request.args if source is None else source
    return {k: source.get(k) for k in _LIST_KEYS if source.get(k)}


def _list_state() -> dict[str, Any]:
    saved = None
    saved_id = queries.int_or_none(request.args.get("saved"))
    if saved_id is not None:
        saved = get_visible_saved_view(saved_id, _user())
        if saved is None:
            abort(404, _("There is no such saved view."))
        filters = ListFilters.from_mapping(saved.filters or {})
        link_args: dict[str, Any] = {"saved": saved.id}
    else:
        filters = ListFilters.from_mapping(request.args)
        link_args = filters.as_args()
    if filters.q:
        page = queries.search_page(filters.q)
    else:
        page = queries.list_tickets(filters, user_id=_user().id, cursor=request.args.get("cursor"))
    return {"filters": filters, "saved": saved, "page": page, "list_args": link_args}


def _nav_state() -> dict[str, Any]:
    user = _user()
    base = ListFilters()
    counts = {
        view: queries.format_count(queries.count_tickets(base.with_view(view), user_id=user.id))
        for view in ("mine", "unassigned", "open", "pending")
    }
    team_counts = {
        team.id: queries.format_count(
            queries.count_tickets(ListFilters(team_id=team.id), user_id=user.id)
        )
        for team in user.teams
    }
    return {
        "counts": counts,
        "team_counts": team_counts,
        "teams": db.session.scalars(select(Team).order_by(Team.name)).all(),
        "tags": db.session.scalars(select(Tag).order_by(Tag.name).limit(40)).all(),
        "channels": queries.CHANNELS,
        "saved_views": visible_saved_views(user),
        "saved_view_form": SavedViewForm(formdata=None),
        "bulk_form": BulkForm(formdata=None),
    }


@bp.get("/")
@role_required(Role.READ_ONLY)
def index():
    return render_template("inbox/index.html", ticket=None, **_list_state(), **_nav_state())


@bp.get("/list")
@role_required(Role.READ_ONLY)
def list_rows():
    """The rows of a list (and its "load more" link), for htmx to swap in."""
    state = _list_state()
    current = queries.int_or_none(request.args.get("current"))
    return render_template("inbox/_rows.html", current_id=current, **state)


# ------------------------------------------------------------------ one ticket


def _ticket_or_404(ticket_id: int) -> Ticket:
    ticket = get_ticket(ticket_id)
    if ticket is None:
        abort(404, _("There is no ticket #%(number)s.", number=ticket_id))
    return ticket


def _back_to(ticket: Ticket) -> str:
    return url_for("inbox.ticket", ticket_id=ticket.id, **_list_args())


def _thread(ticket: Ticket) -> list[Message]:
    return list(
        db.session.scalars(
            select(Message)
            .where(Message.ticket_id == ticket.id)
            .order_by(Message.created_at, Message.id)
            .options(
                selectinload(Message.author),
                selectinload(Message.contact).selectinload(Contact.identities),
                selectinload(Message.attachments),
            )
        )
    )


def _render_ticket(
    ticket: Ticket,
    *,
    reply_form: ReplyForm | None = None,
    note_form: NoteForm | None = None,
    status: int = 200,
) -> Any:
    from helpdesk.crm.summary import contact_summary

    if reply_form is None:
        reply_form = ReplyForm(formdata=None, idempotency_key=new_idempotency_key())
        canned_id = queries.int_or_none(request.args.get("canned"))
        canned = db.session.get(CannedResponse, canned_id) if canned_id else None
        if canned is not None:
            reply_form.body.data = render_canned(canned, ticket, _user())
    if note_form is None:
        note_form = NoteForm(formdata=None, idempotency_key=new_idempotency_key())
    agents = db.session.scalars(
        select(User)
        .where(User.is_active_user.is_(True), User.role != Role.READ_ONLY)
        .order_by(User.name)
    ).all()
    context = {
        "ticket": ticket,
        "messages": _thread(ticket),
        "reply_form": reply_form,
        "note_form": note_form,
        "status_form": StatusForm(formdata=None, status=ticket.status.value),
        "priority_form": PriorityForm(formdata=None, priority=ticket.priority.value),
        "assign_form": AssignForm(
            formdata=None,
            assignee=str(ticket.assignee_id or ""),
            team=str(ticket.team_id or ""),
        ),
        "tags_form": TagsForm(formdata=None, tags=", ".join(t.name for t in ticket.tags)),
        "merge_form": MergeForm(formdata=None),
        "canned_responses": db.session.scalars(
            select(CannedResponse).order_by(CannedResponse.title)
        ).all(),
        "mention_handles": [(u.email.split("@")[0], u.name) for u in agents if u.id != _user().id],
        "attribute_defs": _ticket_attribute_defs(),
        "contact": ticket.contact,
        "crm": contact_summary(ticket.contact),
        "can_edit": _user().can(Role.AGENT),
    }
    return (
        render_template("inbox/index.html", **context, **_list_state(), **_nav_state()),
        status,
    )


def _ticket_attribute_defs() -> list[CustomAttribute]:
    return list(
        db.session.scalars(
            select(CustomAttribute)
            .where(CustomAttribute.applies_to == "ticket")
            .order_by(CustomAttribute.label)
        )
    )


@bp.get("/tickets/<int:ticket_id>")
@role_required(Role.READ_ONLY)
def ticket(ticket_id: int):
    found = _ticket_or_404(ticket_id)
    if found.id != ticket_id:
        flash(_("Ticket #%(old)s was merged into #%(new)s.", old=ticket_id, new=found.id), "info")
        return redirect(_back_to(found))
    if _user().can(Role.AGENT):
        mark_read(found, actor=_actor())
        db.session.commit()
    return _render_ticket(found)


@bp.get("/tickets/<int:ticket_id>/messages/<int:message_id>")
@role_required(Role.READ_ONLY)
def message_fragment(ticket_id: int, message_id: int):
    """One message of the thread, for live updates."""
    ticket = _ticket_or_404(ticket_id)
    message = db.session.get(Message, message_id)
    if message is None or message.ticket_id != ticket.id:
        abort(404, _("There is no such message on this ticket."))
    return render_template("inbox/_message.html", m=message, ticket=ticket)


@bp.get("/tickets/<int:ticket_id>/properties")
@role_required(Role.READ_ONLY)
def properties_fragment(ticket_id: int):
    """The ticket's header and properties, refreshed after a live change."""
    found = _ticket_or_404(ticket_id)
    return render_template(
        "inbox/_properties.html",
        ticket=found,
        status_form=StatusForm(formdata=None, status=found.status.value),
        priority_form=PriorityForm(formdata=None, priority=found.priority.value),
        assign_form=AssignForm(
            formdata=None, assignee=str(found.assignee_id or ""), team=str(found.team_id or "")
        ),
        tags_form=TagsForm(formdata=None, tags=", ".join(t.name for t in found.tags)),
        merge_form=MergeForm(formdata=None),
        attribute_defs=_ticket_attribute_defs(),
        can_edit=_user().can(Role.AGENT),
        list_args=_list_args(),
        oob=True,
    )


@bp.get("/tickets/<int:ticket_id>/canned/<int:canned_id>")
@role_required(Role.AGENT)
def canned(ticket_id: int, canned_id: int):
    """A canned response with this ticket's placeholders filled in."""
    found = _ticket_or_404(ticket_id)
    response = db.session.get(CannedResponse, canned_id)
    if response is None:
        abort(404, _("There is no such canned response."))
    return jsonify({"id": response.id, "body": render_canned(response, found, _user())})


def _uploads(files: list[Any] | None) -> list[Upload]:
    limit = current_app.config["RAPPORT_MAX_UPLOAD_BYTES"]
    uploads = []
    total = 0
    for storage in files or []:
        if not getattr(storage, "filename", ""):
            continue
        data = storage.read()
        total += len(data)
        if total > limit:
            abort(413)
        uploads.append(Upload(storage.filename, storage.mimetype or "", data))
    return uploads


@bp.post("/tickets/<int:ticket_id>/reply")
@role_required(Role.AGENT)
def reply(ticket_id: int):
    found = _ticket_or_404(ticket_id)
    form = ReplyForm()
    if not form.validate_on_submit():
        return _render_ticket(found, reply_form=form, status=422)
    status_after = TicketStatus(form.status_after.data) if form.status_after.data else None
    try:
        reply_to_ticket(
            found,
            actor=_actor(),
            author=_user(),
            body=form.body.data or "",
            uploads=_uploads(form.attachments.data),
            idempotency_key=form.idempotency_key.data or None,
            status_after=status_after,
        )
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(_back_to(found))
    db.session.commit()
    return redirect(_back_to(found) + "#composer")


@bp.post("/tickets/<int:ticket_id>/note")
@role_required(Role.AGENT)
def note(ticket_id: int):
    found = _ticket_or_404(ticket_id)
    form = NoteForm()
    if not form.validate_on_submit():
        return _render_ticket(found, note_form=form, status=422)
    try:
        add_note(
            found,
            actor=_actor(),
            author=_user(),
            body=form.body.data or "",
            uploads=_uploads(form.attachments.data),
            idempotency_key=form.idempotency_key.data or None,
        )
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(_back_to(found))
    db.session.commit()
    return redirect(_back_to(found) + "#composer")


def _form_errors(form: Any) -> str:
    return "; ".join(
        f"{form[name].label.text}: {', '.join(errs)}" for name, errs in form.errors.items()
    )


@bp.post("/tickets/<int:ticket_id>/status")
@role_required(Role.AGENT)
def status(ticket_id: int):
    found = _ticket_or_404(ticket_id)
    form = StatusForm()
    if not form.validate_on_submit():
        flash(_form_errors(form), "error")
        return redirect(_back_to(found))
    set_status(found, TicketStatus(form.status.data), actor=_actor())
    db.session.commit()
    flash(
        _(
            "Ticket #%(number)s is now %(status)s.",
            number=found.number,
            status=_status_label(found.status),
        ),
        "success",
    )
    return redirect(_back_to(found))


def _status_label(status: TicketStatus) -> str:
    return {
        TicketStatus.NEW: _("new"),
        TicketStatus.OPEN: _("open"),
        TicketStatus.PENDING: _("pending"),
        TicketStatus.SOLVED: _("solved"),
        TicketStatus.CLOSED: _("closed"),
    }[status]


@bp.post("/tickets/<int:ticket_id>/priority")
@role_required(Role.AGENT)
def priority(ticket_id: int):
    found = _ticket_or_404(ticket_id)
    form = PriorityForm()
    if not form.validate_on_submit():
        flash(_form_errors(form), "error")
        return redirect(_back_to(found))
    set_priority(found, Priority(form.priority.data), actor=_actor())
    db.session.commit()
    return redirect(_back_to(found))


def _user_by_field(value: str | None) -> User | None:
    user_id = queries.int_or_none(value)
    if user_id is None:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.is_active_user:
        abort(400, _("There is no such agent."))
    return user


def _team_by_field(value: str | None) -> Team | None:
    team_id = queries.int_or_none(value)
    if team_id is None:
        return None
    team = db.session.get(Team, team_id)
    if team is None:
        abort(400, _("There is no such team."))
    return team


@bp.post("/tickets/<int:ticket_id>/assign")
@role_required(Role.AGENT)
def assign(ticket_id: int):
    found = _ticket_or_404(ticket_id)
    form = AssignForm()
    if not form.validate_on_submit():
        flash(_form_errors(form), "error")
        return redirect(_back_to(found))
    assign_ticket(
        found,
        actor=_actor(),
        assignee=_user_by_field(form.assignee.data),
        team=_team_by_field(form.team.data),
    )
    db.session.commit()
    return redirect(_back_to(found))


@bp.post("/tickets/<int:ticket_id>/tags")
@role_required(Role.AGENT)
def tags(ticket_id: int):
    found = _ticket_or_404(ticket_id)
    form = TagsForm()
    if not form.validate_on_submit():
        flash(_form_errors(form), "error")
        return redirect(_back_to(found))
    set_tags(found, (form.tags.data or "").split(","), actor=_actor())
    db.session.commit()
    return redirect(_back_to(found))


@bp.post("/tickets/<int:ticket_id>/attributes")
@role_required(Role.AGENT)
def attributes(ticket_id: int):
    found = _ticket_or_404(ticket_id)
    values: dict[str, Any] = {}
    for definition in _ticket_attribute_defs():
        field = f"attr_{definition.key}"
        if definition.type == "boolean":
            # An unticked checkbox sends nothing; the hidden marker says the field was on the form.
            if f"{field}__present" in request.form:
                values[definition.key] = field in request.form
        elif field in request.form:
            values[definition.key] = request.form[field].strip()
    try:
        set_ticket_attributes(found, values, actor=_actor())
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(_back_to(found))
    db.session.commit()
    flash(_("Attributes saved."), "success")
    return redirect(_back_to(found))


@bp.post("/tickets/<int:ticket_id>/merge")
@role_required(Role.AGENT)
def merge(ticket_id: int):
    found = _ticket_or_404(ticket_id)
    form = MergeForm()
    if not form.validate_on_submit():
        flash(_form_errors(form), "error")
        return redirect(_back_to(found))
    target = get_ticket(form.target.data)
    if target is None:
        flash(_("There is no ticket #%(number)s.", number=form.target.data), "error")
        return redirect(_back_to(found))
    try:
        merge_tickets(found, target, actor=_actor())
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(_back_to(found))
    db.session.commit()
    flash(_("Ticket #%(old)s was merged into #%(new)s.", old=found.id, new=target.id), "success")
    return redirect(_back_to(target))


# ------------------------------------------------------------------ many tickets


def _safe_next(target: str | None) -> str:
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and not urlsplit(target).netloc
    ):
        return target
    return url_for("inbox.index")


@bp.post("/bulk")
@role_required(Role.AGENT)
def bulk():
    """Apply one action to the selected tickets, all or nothing."""
    form = BulkForm()
    back = _safe_next(form.next.data)
    ids = sorted({int(v) for v in request.form.getlist("ticket_ids") if v.isdigit()})[:BULK_LIMIT]
    if not form.validate_on_submit():
        flash(_form_errors(form) or _("Choose an action."), "error")
        return redirect(back)
    if not ids:
        flash(_("Select at least one ticket first."), "error")
        return redirect(back)
    tickets = list(db.session.scalars(select(Ticket).where(Ticket.id.in_(ids)).order_by(Ticket.id)))
    actor = _actor()
    action = form.action.data
    try:
        if action == "assign":
            assignee = _user_by_field(form.assignee.data)
            for t in tickets:
                assign_ticket(t, actor=actor, assignee=assignee)
        elif action == "team":
            team = _team_by_field(form.team.data)
            for t in tickets:
                assign_ticket(t, actor=actor, team=team)
        elif action == "tag":
            if not (form.tag.data or "").strip():
                flash(_("Type a tag to add."), "error")
                return redirect(back)
            for t in tickets:
                add_tags(t, [form.tag.data or ""], actor=actor)
        elif action == "status":
            try:
                new_status = TicketStatus(form.status.data)
            except ValueError:
                abort(400, _("There is no such status."))
            for t in tickets:
                set_status(t, new_status, actor=actor)
        elif action == "merge":
            live = [t for t in tickets if t.merged_into_id is None]
            if len(live) < 2:
                flash(_("Select at least two tickets to merge."), "error")
                return redirect(back)
            # The oldest ticket is kept; the others fold into it.
            target, *sources = live
            for source in sources:
                merge_tickets(source, target, actor=actor)
            db.session.commit()
            flash(
                ngettext(
                    "%(num)d ticket was merged into #%(target)s.",
                    "%(num)d tickets were merged into #%(target)s.",
                    len(sources),
                    target=target.id,
                ),
                "success",
            )
            return redirect(back)
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(back)
    db.session.commit()
    flash(ngettext("%(num)d ticket updated.", "%(num)d tickets updated.", len(tickets)), "success")
    return redirect(back)


@bp.post("/views")
@role_required(Role.AGENT)
def save_view():
    form = SavedViewForm()
    if not form.validate_on_submit():
        flash(_form_errors(form), "error")
        return redirect(url_for("inbox.index", **_list_args(request.form)))
    filters = ListFilters.from_mapping(request.form)
    view = create_saved_view(
        actor=_actor(),
        owner=_user(),
        name=form.name.data or "",
        filters=filters.as_args(),
        is_shared=bool(form.is_shared.data),
    )
    db.session.commit()
    flash(_("View “%(name)s” saved.", name=view.name), "success")
    return redirect(url_for("inbox.index", saved=view.id))


@bp.post("/views/<int:view_id>/delete")
@role_required(Role.AGENT)
def delete_view(view_id: int):
    view = get_visible_saved_view(view_id, _user())
    if view is None:
        abort(404, _("There is no such saved view."))
    try:
        delete_saved_view(view, actor=_actor())
    except OperationError:
        abort(403, _("Only the owner can delete a saved view."))
    db.session.commit()
    flash(_("View deleted."), "success")
    return redirect(url_for("inbox.index"))
