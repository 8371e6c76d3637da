"""What a rule can do. Each action takes the subject, its parameters and an automation actor,
calls the operation that owns the change, and returns a small result for the run log."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from helpdesk import events
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Priority, Team, Ticket, TicketStatus, User, utcnow
from helpdesk.operations import tickets as ticket_ops
from helpdesk.operations.messages import add_note, reply_to_ticket

from . import templating
from .events import WebhookQueued
from .facts import Subject
from .models import Rule, WebhookDelivery


class ActionSkipped(Exception):
    """The action does not apply here (no ticket, nobody to assign to); not an error."""


@dataclass(frozen=True, slots=True)
class ActionContext:
    rule: Rule
    version_number: int
    subject: Subject
    actor: Actor
    trigger: str

    @property
    def idempotency_key(self) -> str:
        """``rule-version:subject:contact``: replays of the same event grant nothing new."""
        contact = self.subject.contact.id if self.subject.contact else "-"
        return f"rule{self.rule.id}-v{self.version_number}:{self.subject.key}:contact{contact}"


def _ticket(ctx: ActionContext) -> Ticket:
    if ctx.subject.ticket is None:
        raise ActionSkipped("no ticket")
    return ctx.subject.ticket


def template_context(ctx: ActionContext) -> dict[str, Any]:
    """What a reply or note template can read: plain values only (the sandbox adds safety)."""
    contact = ctx.subject.contact
    ticket = ctx.subject.ticket
    survey = ctx.subject.survey
    order = ctx.subject.order
    return {
        "contact": {
            "name": contact.name if contact else "",
            "first_name": contact.first_name if contact else "",
            "email": contact.email if contact else None,
        },
        "ticket": {
            "number": ticket.id if ticket else None,
            "subject": ticket.subject if ticket else "",
            "status": ticket.status.value if ticket else None,
            "priority": ticket.priority.value if ticket else None,
            "channel": ticket.channel if ticket else None,
        },
        "survey": {"kind": survey.kind, "score": survey.score} if survey else {},
        "order": {
            "number": order.external_id,
            "total": str(order.total),
            "currency": order.currency,
        }
        if order
        else {},
        "rule": {"name": ctx.rule.name},
    }


# ------------------------------------------------------------------ ticket actions


def _assign(ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
    ticket = _ticket(ctx)
    team = ticket.team
    if params.get("team"):
        team = db.session.scalar(
            select(Team).where(func.lower(Team.name) == params["team"].lower())
        )
        if team is None:
            raise ValueError(f"no team named '{params['team']}'")
    kwargs: dict[str, Any] = {}
    if params.get("team"):
        kwargs["team"] = team
    if params.get("agent"):
        agent = db.session.scalar(
            select(User).where(func.lower(User.email) == params["agent"].lower())
        )
        if agent is None or not agent.is_active_user:
            raise ValueError(f"no active agent '{params['agent']}'")
        kwargs["assignee"] = agent
    elif params.get("round_robin"):
        if team is None:
            raise ActionSkipped("round robin needs a team")
        agent = ticket_ops.next_round_robin_agent(team)
        if agent is None:
            raise ActionSkipped(f"nobody available in team '{team.name}'")
        kwargs["assignee"] = agent
    ticket_ops.assign_ticket(ticket, actor=ctx.actor, **kwargs)
    return {
        "assignee": ticket.assignee.email if ticket.assignee else None,
        "team": ticket.team.name if ticket.team else None,
    }


def _set_status(ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
    ticket = _ticket(ctx)
    old = ticket.status.value
    ticket_ops.set_status(ticket, TicketStatus(params["status"]), actor=ctx.actor)
    return {"old": old, "new": ticket.status.value}


def _set_priority(ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
    ticket = _ticket(ctx)
    old = ticket.priority.value
    ticket_ops.set_priority(ticket, Priority(params["priority"]), actor=ctx.actor)
    return {"old": old, "new": ticket.priority.value}


def _set_tags(ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
    ticket = _ticket(ctx)
    current = {t.name for t in ticket.tags}
    wanted = (current | set(params.get("add", []))) - set(params.get("remove", []))
    ticket_ops.set_tags(ticket, sorted(wanted), actor=ctx.actor)
    return {"tags": sorted(t.name for t in ticket.tags)}


def _set_attributes(ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
    ticket = _ticket(ctx)
    ticket_ops.set_ticket_attributes(ticket, params["values"], actor=ctx.actor)
    return {"attributes": sorted(params["values"])}


def _reply(ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
    ticket = _ticket(ctx)
    templates = params["template"]
    contact = ctx.subject.contact
    locale = templating.pick_locale(templates, contact.locale if contact else None, ticket.language)
    body = templating.render(templates[locale], template_context(ctx))
    if not body:
        raise ActionSkipped("the template rendered empty")
    status_after = TicketStatus(params["status_after"]) if params.get("status_after") else None
    message = reply_to_ticket(
        ticket,
        actor=ctx.actor,
        body=body,
        idempotency_key=f"{ctx.idempotency_key}:reply:{_digest(body)}",
        status_after=status_after,
    )
    return {"message_id": message.id, "language": locale, "channel": ticket.channel}


def _note(ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
    ticket = _ticket(ctx)
    body = templating.render(params["body"], template_context(ctx))
    if not body:
        raise ActionSkipped("the note rendered empty")
    message = add_note(ticket, actor=ctx.actor, body=body)
    return {"message_id": message.id}


def _send_survey(ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
    from automation.surveys.operations import send_survey

    survey = send_survey(_ticket(ctx), params["kind"], actor=ctx.actor)
    if survey is None:
        raise ActionSkipped("a survey of this kind was already sent for the ticket")
    return {"survey_id": survey.id, "kind": survey.kind}


# ------------------------------------------------------------------ incentives and points


def _money(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    amount = getattr(value, "amount", None)
    if amount is not None:
        currency = getattr(value, "currency", "")
        return f"{amount} {currency}".strip()
    return str(value)


def _contact(ctx: ActionContext) -> Any:
    if ctx.subject.contact is None:
        raise ActionSkipped("no contact")
    return ctx.subject.contact


def _issue_incentive(ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
    from automation.incentives.operations import grant_incentive

    result = grant_incentive(
        params["policy"],
        contact=_contact(ctx),
        ticket=ctx.subject.ticket,
        actor=ctx.actor,
        reason=f"rule '{ctx.rule.name}' on {ctx.trigger}",
        key=f"{ctx.idempotency_key}:incentive:{params['policy']}",
    )
    issued, reason = grant_outcome(result)
    return {
        "policy": params["policy"],
        "issued": issued,
        "reason": reason,
        "cost": _money(getattr(result, "cost", None)),
    }


def grant_outcome(result: Any) -> tuple[bool, str | None]:
    """Whether a grant result issued something, and why not (or its status)."""
    issued = getattr(result, "issued", None)
    if issued is None:
        issued = getattr(result, "is_granted", False)
    reason = getattr(result, "reason", None) or getattr(result, "status", None)
    return bool(issued), reason


def _points(ctx: ActionContext, params: dict[str, Any], *, deduct: bool) -> dict[str, Any]:
    from automation.loyalty import operations as loyalty

    fn = loyalty.deduct_points if deduct else loyalty.award_points
    verb = "deduct" if deduct else "award"
    result = fn(
        _contact(ctx),
        params["points"],
        actor=ctx.actor,
        reason=f"rule '{ctx.rule.name}' on {ctx.trigger}",
        key=f"{ctx.idempotency_key}:{verb}:{params['points']}",
        ticket=ctx.subject.ticket,
        order=ctx.subject.order,
    )
    return {"points": params["points"], "result": str(getattr(result, "id", result))[:80]}


# ------------------------------------------------------------------ webhooks


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _webhook(ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
    subject = ctx.subject
    payload = {
        "event": ctx.trigger,
        "rule": {"id": ctx.rule.id, "name": ctx.rule.name, "version": ctx.version_number},
        "subject": subject.key,
        "ticket": {
            "id": subject.ticket.id,
            "status": subject.ticket.status.value,
            "priority": subject.ticket.priority.value,
            "channel": subject.ticket.channel,
            "subject": subject.ticket.subject,
        }
        if subject.ticket
        else None,
        "contact": {"id": subject.contact.id, "email": subject.contact.email}
        if subject.contact
        else None,
        "order": {"id": subject.order.id, "external_id": subject.order.external_id}
        if subject.order
        else None,
        "survey": {
            "id": subject.survey.id,
            "kind": subject.survey.kind,
            "score": subject.survey.score,
        }
        if subject.survey
        else None,
        "sent_at": utcnow().isoformat(),
    }
    delivery = WebhookDelivery(
        rule_id=ctx.rule.id,
        url=params["url"],
        body=json.dumps(payload, sort_keys=True, separators=(",", ":")),
        status="queued",
    )
    db.session.add(delivery)
    db.session.flush()
    events.on_commit(WebhookQueued(actor=ctx.actor, delivery_id=delivery.id))
    return {"delivery_id": delivery.id, "url": params["url"]}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


HANDLERS: dict[str, Callable[[ActionContext, dict[str, Any]], dict[str, Any]]] = {
    "assign": _assign,
    "set_status": _set_status,
    "set_priority": _set_priority,
    "set_tags": _set_tags,
    "set_attributes": _set_attributes,
    "reply": _reply,
    "note": _note,
    "send_survey": _send_survey,
    "issue_incentive": _issue_incentive,
    "award_points": lambda ctx, p: _points(ctx, p, deduct=False),
    "deduct_points": lambda ctx, p: _points(ctx, p, deduct=True),
    "webhook": _webhook,
}
