"""Turn events into rule runs. Events caused by automation are ignored, so rules never loop."""

from __future__ import annotations

import logging
from typing import Any

from automation.sla import events as sla_events
from automation.surveys import events as survey_events
from helpdesk import events
from helpdesk.extensions import db
from helpdesk.jobs import job

from . import events as rule_events
from .engine import has_enabled_rules, run_rules

log = logging.getLogger(__name__)


@job()
def evaluate_rules(trigger: str, refs: dict[str, Any]) -> int:
    """Run the enabled rules for one event; returns how many matched."""
    runs = run_rules(trigger, refs)
    db.session.commit()
    return len(runs)


def _fire(trigger: str, event: events.Event, **refs: Any) -> None:
    if event.actor.is_automation:  # rules never trigger themselves
        return
    if not has_enabled_rules(trigger):
        return
    db.session.rollback()  # no transaction held while the job runs (SQLite write lock)
    evaluate_rules(trigger, {**refs, "actor_kind": event.actor.kind})


@events.ticket_created.connect
def _on_ticket_created(sender: Any, event: events.TicketCreated, **_: Any) -> None:
    _fire("ticket.created", event, ticket_id=event.ticket_id)


@events.message_received.connect
def _on_message_received(sender: Any, event: events.MessageReceived, **_: Any) -> None:
    _fire("message.received", event, ticket_id=event.ticket_id, message_id=event.message_id)


@events.ticket_updated.connect
def _on_ticket_updated(sender: Any, event: events.TicketUpdated, **_: Any) -> None:
    _fire("ticket.updated", event, ticket_id=event.ticket_id, changes=dict(event.changes))


@events.ticket_solved.connect
def _on_ticket_solved(sender: Any, event: events.TicketSolved, **_: Any) -> None:
    _fire("ticket.solved", event, ticket_id=event.ticket_id)


@events.ticket_closed.connect
def _on_ticket_closed(sender: Any, event: events.TicketClosed, **_: Any) -> None:
    _fire("ticket.closed", event, ticket_id=event.ticket_id)


@events.ticket_reopened.connect
def _on_ticket_reopened(sender: Any, event: events.TicketReopened, **_: Any) -> None:
    _fire("ticket.reopened", event, ticket_id=event.ticket_id)


@events.contact_created.connect
def _on_contact_created(sender: Any, event: events.ContactCreated, **_: Any) -> None:
    _fire("contact.created", event, contact_id=event.contact_id)


_REFUNDED = ("refunded", "partially_refunded")
_PAID = ("paid", "fulfilled")


def order_triggers(status: str, previous: str | None) -> list[str]:
    """The order triggers one status change fires (a new paid order is created and paid)."""
    triggers = []
    if previous is None:
        triggers.append("order.created")
    if status in _PAID and previous not in _PAID:
        triggers.append("order.paid")
    if status in _REFUNDED and previous != status:
        triggers.append("order.refunded")
    return triggers


@events.order_recorded.connect
def _on_order_recorded(sender: Any, event: events.OrderRecorded, **_: Any) -> None:
    for trigger in order_triggers(event.status, event.previous_status):
        _fire(trigger, event, order_id=event.order_id, contact_id=event.contact_id)


@survey_events.survey_answered.connect
def _on_survey_answered(sender: Any, event: survey_events.SurveyAnswered, **_: Any) -> None:
    _fire(
        "survey.answered",
        event,
        survey_id=event.survey_id,
        ticket_id=event.ticket_id,
        contact_id=event.contact_id,
    )


@sla_events.first_response_breached.connect
def _on_first_response_breached(
    sender: Any, event: sla_events.SlaFirstResponseBreached, **_: Any
) -> None:
    _fire("sla.first_response_breached", event, ticket_id=event.ticket_id)


@sla_events.resolution_breached.connect
def _on_resolution_breached(sender: Any, event: sla_events.SlaResolutionBreached, **_: Any) -> None:
    _fire("sla.resolution_breached", event, ticket_id=event.ticket_id)


@rule_events.activity_reported.connect
def _on_activity_reported(sender: Any, event: rule_events.ActivityReported, **_: Any) -> None:
    _fire(
        "activity.reported",
        event,
        activity_id=event.activity_id,
        contact_id=event.contact_id,
    )
