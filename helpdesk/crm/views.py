"""CRM pages: contacts, their identities, figures and history; companies; merges; CSV import."""

from __future__ import annotations

import importlib
import re
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import selectinload
from werkzeug.routing import BuildError

from channels.base import IdentityKind, SenderIdentity
from helpdesk.actors import Actor
from helpdesk.auth.access import role_required
from helpdesk.crm import forms
from helpdesk.crm.operations import create_company
from helpdesk.crm.summary import contact_summary
from helpdesk.crm.timeline import contact_timeline
from helpdesk.extensions import db
from helpdesk.models import (
    Company,
    Contact,
    ContactIdentity,
    CustomAttribute,
    Order,
    Role,
    Ticket,
    TicketStatus,
)
from helpdesk.operations.contacts import (
    OperationError,
    add_identity,
    find_contact,
    merge_contacts,
    normalize_identity,
    update_contact,
)

bp = Blueprint("crm", __name__, url_prefix="/crm")

PER_PAGE = 25
_ID_QUERY = re.compile(r"^#?(\d{1,12})$")


def _actor() -> Actor:
    return Actor.for_user(current_user)


@bp.app_template_global()
def crm_ticket_url(ticket_id: int | None) -> str | None:
    """Link to a ticket in the inbox, once the inbox has a ticket page."""
    if ticket_id is None:
        return None
    for endpoint in ("inbox.ticket", "inbox.show_ticket", "inbox.view_ticket"):
        try:
            return url_for(endpoint, ticket_id=ticket_id)
        except BuildError:
            continue
    return None


@bp.context_processor
def _template_names() -> dict[str, Any]:
    return {"Role": Role}


@bp.app_template_global()
def crm_identity_label(kind: IdentityKind) -> str:
    return str(forms.IDENTITY_LABELS.get(kind, kind.value))


# ------------------------------------------------------------------ contacts


def _like(q: str) -> str:
    """A LIKE pattern that finds ``q`` anywhere, with ``%`` and ``_`` taken literally."""
    return "%" + q.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"


def search_contacts(q: str, *, exclude_id: int | None = None) -> Any:
    """Contacts whose name, any identity or company matches ``q`` (or whose number is ``q``)."""
    stmt = (
        select(Contact)
        .options(selectinload(Contact.identities), selectinload(Contact.company))
        .where(Contact.merged_into_id.is_(None))
    )
    if exclude_id is not None:
        stmt = stmt.where(Contact.id != exclude_id)
    q = q.strip()
    if q:
        like = _like(q)
        conditions: list[ColumnElement[bool]] = [
            Contact.name.ilike(like, escape="\\"),
            Contact.id.in_(
                select(ContactIdentity.contact_id).where(
                    ContactIdentity.value.ilike(like, escape="\\")
                )
            ),
            Contact.company_id.in_(select(Company.id).where(Company.name.ilike(like, escape="\\"))),
        ]
        # Identities are stored normalised (+3069…), so also look for the normalised phone.
        digits = normalize_identity(IdentityKind.PHONE, q)
        if digits.startswith("+") and len(digits) > 4:
            conditions.append(
                Contact.id.in_(
                    select(ContactIdentity.contact_id).where(
                        ContactIdentity.value.contains(digits[1:])
                    )
                )
            )
        match = _ID_QUERY.match(q)
        if match:
            conditions.append(Contact.id == int(match.group(1)))
        stmt = stmt.where(or_(*conditions))
    return stmt.order_by(Contact.id.desc())


@bp.route("/")
@role_required(Role.READ_ONLY)
def index() -> ResponseReturnValue:
    q = request.args.get("q", "")
    page = db.paginate(search_contacts(q), per_page=PER_PAGE, error_out=False, count=True)
    return render_template("crm/contacts.html", page=page, q=q)


def _get_contact(contact_id: int) -> Contact:
    contact = db.session.get(Contact, contact_id)
    if contact is None:
        abort(404, _("There is no contact #%(id)s.", id=contact_id))
    return contact


def _attribute_definitions(applies_to: str = "contact") -> list[CustomAttribute]:
    return list(
        db.session.scalars(
            select(CustomAttribute)
            .where(CustomAttribute.applies_to == applies_to)
            .order_by(CustomAttribute.label, CustomAttribute.id)
        )
    )


def _companies() -> list[Company]:
    return list(db.session.scalars(select(Company).order_by(func.lower(Company.name))))


def _contact_form(contact: Contact, **kwargs: Any) -> forms.ContactForm:
    form = forms.ContactForm(
        name=contact.name, company_id=contact.company_id or 0, locale=contact.locale or "", **kwargs
    )
    return form.set_choices(_companies(), current_app.config["RAPPORT_LOCALES"])


def _render_contact(contact: Contact, status: int = 200, **overrides: Any) -> ResponseReturnValue:
    definitions = _attribute_definitions()
    can_edit = current_user.can(Role.AGENT)
    page = request.args.get("page", 1, type=int) or 1
    context: dict[str, Any] = {
        "contact": contact,
        "crm": contact_summary(contact),
        "timeline": contact_timeline(contact, page=page),
        "definitions": definitions,
        "can_edit": can_edit,
        "merged_into": db.session.get(Contact, contact.merged_into_id)
        if contact.merged_into_id
        else None,
    }
    if can_edit:
        context["contact_form"] = overrides.get("contact_form") or _contact_form(
            contact, formdata=None
        )
        context["notes_form"] = overrides.get("notes_form") or forms.NotesForm(
            notes=contact.notes, formdata=None
        )
        context["identity_form"] = overrides.get("identity_form") or forms.IdentityForm(
            formdata=None
        )
        context["attributes_form"] = overrides.get("attributes_form") or forms.attributes_form(
            definitions, contact.attributes or {}, formdata=None
        )
    context["identity_conflict"] = overrides.get("identity_conflict")
    return render_template("crm/contact.html", **context), status


@bp.route("/contacts/<int:contact_id>")
@role_required(Role.READ_ONLY)
def contact(contact_id: int) -> ResponseReturnValue:
    return _render_contact(_get_contact(contact_id))


def _refuse_if_merged(contact: Contact) -> None:
    if contact.merged_into_id is not None:
        abort(
            409,
            _("This contact was merged into #%(id)s; edit that one.", id=contact.merged_into_id),
        )


@bp.route("/contacts/<int:contact_id>/details", methods=["POST"])
@role_required(Role.AGENT)
def edit_contact(contact_id: int) -> ResponseReturnValue:
    contact = _get_contact(contact_id)
    _refuse_if_merged(contact)
    form = _contact_form(contact)
    if not form.validate_on_submit():
        return _render_contact(contact, 422, contact_form=form)
    update_contact(
        contact,
        actor=_actor(),
        name=form.name.data.strip(),
        company_id=form.company_id.data or None,
        locale=form.locale.data,
    )
    db.session.commit()
    flash(_("Contact saved."), "success")
    return redirect(url_for(".contact", contact_id=contact.id))


@bp.route("/contacts/<int:contact_id>/notes", methods=["POST"])
@role_required(Role.AGENT)
def edit_notes(contact_id: int) -> ResponseReturnValue:
    contact = _get_contact(contact_id)
    _refuse_if_merged(contact)
    form = forms.NotesForm()
    if not form.validate_on_submit():
        return _render_contact(contact, 422, notes_form=form)
    update_contact(contact, actor=_actor(), notes=form.notes.data.strip())
    db.session.commit()
    flash(_("Notes saved."), "success")
    return redirect(url_for(".contact", contact_id=contact.id) + "#notes")


@bp.route("/contacts/<int:contact_id>/attributes", methods=["POST"])
@role_required(Role.AGENT)
def edit_attributes(contact_id: int) -> ResponseReturnValue:
    contact = _get_contact(contact_id)
    _refuse_if_merged(contact)
    definitions = _attribute_definitions()
    form = forms.attributes_form(definitions, contact.attributes or {})
    if not form.validate_on_submit():
        return _render_contact(contact, 422, attributes_form=form)
    try:
        update_contact(
            contact, actor=_actor(), attributes=forms.attribute_values(form, definitions)
        )
    except OperationError as exc:  # a definition changed between the check and now
        db.session.rollback()
        flash(str(exc), "error")
        return _render_contact(contact, 422, attributes_form=form)
    db.session.commit()
    flash(_("Attributes saved."), "success")
    return redirect(url_for(".contact", contact_id=contact.id) + "#attributes")


@bp.route("/contacts/<int:contact_id>/identities", methods=["POST"])
@role_required(Role.AGENT)
def add_contact_identity(contact_id: int) -> ResponseReturnValue:
    contact = _get_contact(contact_id)
    _refuse_if_merged(contact)
    form = forms.IdentityForm()
    if not form.validate_on_submit():
        return _render_contact(contact, 422, identity_form=form)
    kind = IdentityKind(form.kind.data)
    value = form.value.data.strip()
    owner = find_contact(kind, value)
    if owner is not None and owner.id != contact.id:
        form.value.errors = [
            _(
                "%(value)s already belongs to another contact. If they are the same person, "
                "merge the two contacts instead.",
                value=normalize_identity(kind, value),
            )
        ]
        return _render_contact(contact, 409, identity_form=form, identity_conflict=owner)
    try:
        add_identity(
            contact,
            SenderIdentity(kind, value, form.display_name.data.strip() or None),
            actor=_actor(),
        )
    except OperationError as exc:
        db.session.rollback()
        form.value.errors = [str(exc)]
        return _render_contact(contact, 409, identity_form=form)
    db.session.commit()
    flash(_("Identity added."), "success")
    return redirect(url_for(".contact", contact_id=contact.id) + "#identities")


# --------------------------------------------------------------------- merge


@bp.route("/contacts/<int:contact_id>/merge")
@role_required(Role.AGENT)
def merge_pick(contact_id: int) -> ResponseReturnValue:
    contact = _get_contact(contact_id)
    _refuse_if_merged(contact)
    q = request.args.get("q", "").strip()
    results = (
        db.session.scalars(search_contacts(q, exclude_id=contact.id).limit(PER_PAGE)).all()
        if q
        else []
    )
    return render_template("crm/merge_pick.html", contact=contact, q=q, results=results)


def _what_moves(source: Contact) -> dict[str, Any]:
    def count(model: Any) -> int:
        return (
            db.session.scalar(
                select(func.count()).select_from(model).where(model.contact_id == source.id)
            )
            or 0
        )

    return {
        "identities": list(source.identities),
        "tickets": db.session.scalars(
            select(Ticket)
            .where(Ticket.contact_id == source.id)
            .order_by(Ticket.created_at.desc())
            .limit(20)
        ).all(),
        "ticket_count": count(Ticket),
        "order_count": count(Order),
    }


@bp.route("/contacts/<int:contact_id>/merge/<int:target_id>", methods=["GET", "POST"])
@role_required(Role.AGENT)
def merge_confirm(contact_id: int, target_id: int) -> ResponseReturnValue:
    source = _get_contact(contact_id)
    target = _get_contact(target_id)
    _refuse_if_merged(source)
    if target.merged_into_id is not None:
        flash(
            _(
                "Contact #%(id)s was itself merged into #%(into)s; pick that one.",
                id=target.id,
                into=target.merged_into_id,
            ),
            "error",
        )
        return redirect(url_for(".merge_pick", contact_id=source.id))
    if source.id == target.id:
        flash(_("A contact cannot be merged into itself."), "error")
        return redirect(url_for(".merge_pick", contact_id=source.id))
    form = forms.ConfirmForm()
    if form.validate_on_submit():
        try:
            merge_contacts(source, target, actor=_actor())
        except OperationError as exc:
            db.session.rollback()
            flash(str(exc), "error")
            return redirect(url_for(".merge_pick", contact_id=source.id))
        db.session.commit()
        flash(
            _("Contact #%(source)s merged into this contact.", source=source.id),
            "success",
        )
        return redirect(url_for(".contact", contact_id=target.id))
    return render_template(
        "crm/merge_confirm.html",
        source=source,
        target=target,
        form=form,
        moves=_what_moves(source),
        source_crm=contact_summary(source),
        target_crm=contact_summary(target),
    )


# ----------------------------------------------------------------- companies


@bp.route("/companies", methods=["GET", "POST"])
@role_required(Role.READ_ONLY)
def companies() -> ResponseReturnValue:
    form = forms.CompanyForm()
    status = 200
    if request.method == "POST":
        if not current_user.can(Role.AGENT):
            abort(403, _("Your role does not allow this."))
        if form.validate_on_submit():
            try:
                company = create_company(
                    actor=_actor(), name=form.name.data, domain=form.domain.data
                )
            except OperationError as exc:
                db.session.rollback()
                form.name.errors = [str(exc)]
            else:
                db.session.commit()
                flash(_("Company created."), "success")
                return redirect(url_for(".company", company_id=company.id))
        status = 422
    q = request.args.get("q", "").strip()
    contact_count = (
        select(func.count(Contact.id))
        .where(Contact.company_id == Company.id, Contact.merged_into_id.is_(None))
        .scalar_subquery()
    )
    stmt = select(Company, contact_count.label("contacts")).order_by(func.lower(Company.name))
    if q:
        stmt = stmt.where(
            or_(
                Company.name.ilike(_like(q), escape="\\"),
                Company.domain.ilike(_like(q), escape="\\"),
            )
        )
    rows = db.session.execute(stmt).all()
    return render_template(
        "crm/companies.html", rows=rows, form=form, q=q, can_edit=current_user.can(Role.AGENT)
    ), status


@bp.route("/companies/<int:company_id>")
@role_required(Role.READ_ONLY)
def company(company_id: int) -> ResponseReturnValue:
    company = db.session.get(Company, company_id)
    if company is None:
        abort(404, _("There is no company #%(id)s.", id=company_id))
    members = db.session.scalars(
        select(Contact)
        .options(selectinload(Contact.identities))
        .where(Contact.company_id == company.id, Contact.merged_into_id.is_(None))
        .order_by(func.lower(Contact.name), Contact.id)
    ).all()
    open_tickets = db.session.scalar(
        select(func.count(Ticket.id)).where(
            Ticket.contact_id.in_([c.id for c in members]),
            Ticket.status.in_([s for s in TicketStatus if not s.is_done]),
        )
    )
    return render_template(
        "crm/company.html", company=company, members=members, open_tickets=open_tickets or 0
    )


# -------------------------------------------------------------------- import

_IMPORTS = "helpdesk.operations.imports"


def _imports_module() -> Any:
    """Load the CSV import operations lazily: the page works before they are deployed."""
    try:
        return importlib.import_module(_IMPORTS)
    except ModuleNotFoundError as exc:
        if exc.name != _IMPORTS:
            raise
        return None


@bp.route("/import", methods=["GET", "POST"])
@role_required(Role.AGENT)
def import_csv() -> ResponseReturnValue:
    form = forms.ImportForm()
    report = None
    status = 200
    imports = _imports_module()
    if form.validate_on_submit():
        if imports is None:
            form.file.errors = [_("CSV import is not installed on this server yet.")]
            status = 503
        else:
            run = (
                imports.import_contacts_csv
                if form.kind.data == "contacts"
                else imports.import_orders_csv
            )
            try:
                report = run(form.file.data.read(), actor=_actor())
            except (OperationError, UnicodeDecodeError) as exc:
                db.session.rollback()
                form.file.errors = [_("The file could not be read: %(reason)s", reason=str(exc))]
                status = 422
            else:
                db.session.commit()
    elif request.method == "POST":
        status = 422
    return render_template(
        "crm/import.html", form=form, report=report, available=imports is not None
    ), status
