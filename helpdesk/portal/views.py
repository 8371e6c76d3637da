"""Portal pages: sign in by emailed link, then a customer's own requests and rewards.

Every view is ``@public`` for the app's role guard: customers have no agent
account. Views that show a customer's data check the portal session
themselves (``customer_required``), and another customer's ticket answers 404,
exactly like one that does not exist.
"""

from __future__ import annotations

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
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from helpdesk.auth.access import public
from helpdesk.extensions import db, limiter
from helpdesk.models import Role

from . import auth
from .auth import LinkError, current_contact, customer_required
from .operations import (
    PortalError,
    customer_rewards,
    customer_ticket,
    customer_tickets,
    new_submission_key,
    open_ticket,
    public_thread,
    request_sign_in_link,
    sending_mailbox,
    status_label,
    submit_reply,
)

bp = Blueprint("portal", __name__, url_prefix="/portal")

#: Each language named in itself, so everyone finds their own.
LANGUAGES = (("en", "English"), ("el", "Ελληνικά"), ("hu", "Magyar"), ("ar", "العربية"))


def _per_address() -> str:
    return str(current_app.config["RAPPORT_PORTAL_LINKS_PER_ADDRESS"])


def _per_ip() -> str:
    return str(current_app.config["RAPPORT_PORTAL_LINKS_PER_IP"])


def _address_key() -> str:
    return "portal-address:" + (request.form.get("email") or "").strip().lower()[:320]


@bp.before_request
def _remember_language() -> None:
    auth.remember_language()


@bp.context_processor
def _context() -> dict[str, object]:
    return {
        "customer": current_contact(),
        "status_label": status_label,
        "languages": [(code, label) for code, label in LANGUAGES if _supported(code)],
    }


def _supported(code: str) -> bool:
    return code in current_app.config["RAPPORT_LOCALES"]


def _problem(status: int, title: str, message: str):
    return render_template("portal/problem.html", title=title, message=message), status


@bp.errorhandler(404)
def _not_found(exc: HTTPException):
    return _problem(404, _("Not found"), _("We could not find that page."))


@bp.errorhandler(429)
def _too_many(exc: HTTPException):
    return _problem(
        429,
        _("Too many attempts"),
        _("You have asked for this too often. Wait a while, then try again."),
    )


@bp.errorhandler(CSRFError)
def _form_expired(exc: CSRFError):
    return _problem(
        400, _("The form expired"), _("Go back, reload the page and send the form again.")
    )


# ------------------------------------------------------------------ signing in


@bp.route("/", methods=["GET", "POST"])
@limiter.limit(_per_ip, methods=["POST"])
@limiter.limit(_per_address, key_func=_address_key, methods=["POST"])
@public
def sign_in():
    next_path = auth.safe_next(request.values.get("next"))
    if current_contact() is not None:
        return redirect(next_path or url_for("portal.tickets"))
    if request.method == "POST":
        address = (request.form.get("email") or "").strip()
        if "@" not in address:
            return _sign_in_page(
                address,
                next_path,
                error=_("Enter the email address you write to us from."),
                status=422,
            )
        request_sign_in_link(address, locale=str(get_locale()), next_path=next_path)
        db.session.commit()
        # The same answer whether or not we know the address: no one learns who is a customer.
        return redirect(url_for("portal.link_sent"))
    return _sign_in_page("", next_path)


def _sign_in_page(
    address: str, next_path: str | None, *, error: str | None = None, status: int = 200
):
    is_admin = getattr(current_user, "is_authenticated", False) and current_user.can(Role.ADMIN)
    return render_template(
        "portal/sign_in.html",
        address=address,
        next_path=next_path,
        error=error,
        no_mailbox=is_admin and sending_mailbox() is None,
    ), status


@bp.route("/sent")
@public
def link_sent():
    return render_template("portal/sent.html", minutes=auth.link_minutes())


@bp.route("/sign-in/<token>", methods=["GET", "POST"])
@limiter.limit("30/minute")
@public
def follow_link(token: str):
    # Mail scanners open links to look at them; only the button press spends one.
    if request.method == "GET":
        try:
            auth.link_state(token)
        except LinkError as exc:
            return _link_problem(exc.reason)
        return render_template("portal/confirm.html", token=token)
    try:
        contact, claim = auth.use_link(token, ip=request.remote_addr)
    except LinkError as exc:
        db.session.rollback()
        return _link_problem(exc.reason)
    db.session.commit()
    auth.sign_in(contact)
    return redirect(claim.next_path or url_for("portal.tickets"))


def _link_problem(reason: str):
    status = 404 if reason == "invalid" else 410
    return render_template(
        "portal/link_problem.html", reason=reason, minutes=auth.link_minutes()
    ), status


@bp.route("/sign-out", methods=["POST"])
@public
def sign_out():
    auth.sign_out()
    flash(_("You are signed out."), "success")
    return redirect(url_for("portal.sign_in"))


# ------------------------------------------------------------------ requests


@bp.route("/tickets")
@public
@customer_required
def tickets():
    page = max(1, request.args.get("page", 1, type=int) or 1)
    rows, has_more = customer_tickets(current_contact(), page=page)  # type: ignore[arg-type]
    return render_template("portal/tickets.html", tickets=rows, page=page, has_more=has_more)


def _own_ticket(ticket_id: int):
    ticket = customer_ticket(current_contact(), ticket_id)  # type: ignore[arg-type]
    if ticket is None:
        abort(404)  # someone else's ticket looks exactly like no ticket
    return ticket


def _ticket_page(ticket, *, body: str = "", error: str | None = None, status: int = 200):
    return render_template(
        "portal/ticket.html",
        ticket=ticket,
        thread=public_thread(ticket),
        body=body,
        error=error,
        key=new_submission_key(),
    ), status


@bp.route("/tickets/<int:ticket_id>")
@public
@customer_required
def ticket(ticket_id: int):
    found = _own_ticket(ticket_id)
    if found.id != ticket_id:  # merged into another one of theirs
        return redirect(url_for("portal.ticket", ticket_id=found.id))
    return _ticket_page(found)


@bp.route("/tickets/<int:ticket_id>/reply", methods=["POST"])
@public
@customer_required
def reply(ticket_id: int):
    found = _own_ticket(ticket_id)
    body = request.form.get("body", "")
    try:
        result = submit_reply(
            current_contact(),  # type: ignore[arg-type]
            found,
            body=body,
            key=request.form.get("key"),
            language=str(get_locale()),
        )
    except PortalError as exc:
        db.session.rollback()
        return _ticket_page(found, body=body, error=str(exc), status=422)
    db.session.commit()
    if result.ticket.id != found.id:
        flash(
            _(
                "That request was closed a while ago, so we opened a new one: #%(number)s.",
                number=result.ticket.id,
            ),
            "success",
        )
    elif not result.is_duplicate:
        flash(_("Your message was sent."), "success")
    return redirect(
        url_for("portal.ticket", ticket_id=result.ticket.id, _anchor=f"message-{result.message_id}")
    )


@bp.route("/tickets/new", methods=["GET", "POST"])
@public
@customer_required
def new_ticket():
    subject = request.form.get("subject", "")
    body = request.form.get("body", "")
    if request.method == "POST":
        try:
            result = open_ticket(
                current_contact(),  # type: ignore[arg-type]
                subject=subject,
                body=body,
                key=request.form.get("key"),
                language=str(get_locale()),
            )
        except PortalError as exc:
            db.session.rollback()
            return render_template(
                "portal/new_ticket.html",
                subject=subject,
                body=body,
                error=str(exc),
                key=request.form.get("key") or new_submission_key(),
            ), 422
        db.session.commit()
        if not result.is_duplicate:
            flash(
                _("Thank you. We received your request #%(number)s.", number=result.ticket.id),
                "success",
            )
        return redirect(url_for("portal.ticket", ticket_id=result.ticket.id))
    return render_template(
        "portal/new_ticket.html", subject="", body="", error=None, key=new_submission_key()
    )


# ------------------------------------------------------------------ rewards


@bp.route("/rewards")
@public
@customer_required
def rewards():
    found = customer_rewards(
        current_contact(),  # type: ignore[arg-type]
        ip=request.remote_addr,
        user_agent=request.headers.get("User-Agent"),
    )
    db.session.commit()  # the referral code, made on the first visit
    return render_template("portal/rewards.html", rewards=found)
