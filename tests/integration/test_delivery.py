"""The outbound funnel: replies are committed as queued, then delivered exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from channels.base import PermanentDeliveryError
from helpdesk.actors import Actor
from helpdesk.delivery import deliver_message, sweep_deliveries
from helpdesk.extensions import db
from helpdesk.models import DeliveryStatus, Message, TicketStatus
from helpdesk.operations.contacts import OperationError
from helpdesk.operations.messages import add_note, reply_to_ticket


@pytest.fixture
def agent(make_user):
    return make_user("agent", name="Sam Support")


def run(job, *args):
    """Call a job the way a worker would: with no transaction open in this session."""
    db.session.commit()
    return job.call_local(*args) if hasattr(job, "call_local") else job(*args)


def reply(ticket, agent, body="On its way!", **kw):
    message = reply_to_ticket(ticket, actor=Actor.for_user(agent), author=agent, body=body, **kw)
    db.session.commit()
    db.session.refresh(message)
    return message


def test_reply_is_sent_after_commit_and_marked_sent(make_ticket, agent, recording_channel):
    ticket = make_ticket()
    message = reply(ticket, agent)
    assert message.status is DeliveryStatus.SENT
    assert recording_channel.sent == [(message.id, f"message-{message.id}")]
    assert message.sent_at is not None


def test_nothing_is_sent_when_the_transaction_rolls_back(make_ticket, agent, recording_channel):
    ticket = make_ticket()
    reply_to_ticket(ticket, actor=Actor.for_user(agent), author=agent, body="draft")
    db.session.rollback()
    assert recording_channel.sent == []
    assert db.session.query(Message).filter_by(direction="outbound").count() == 0


def test_first_reply_sets_first_response_and_opens_a_new_ticket(
    make_ticket, agent, recording_channel
):
    ticket = make_ticket()
    reply(ticket, agent)
    assert ticket.first_response_at is not None
    assert ticket.status is TicketStatus.OPEN


def test_reply_can_set_the_ticket_pending_in_the_same_step(make_ticket, agent, recording_channel):
    ticket = make_ticket()
    reply(ticket, agent, status_after=TicketStatus.PENDING)
    assert ticket.status is TicketStatus.PENDING


def test_double_submitted_reply_is_stored_and_sent_once(make_ticket, agent, recording_channel):
    ticket = make_ticket()
    first = reply(ticket, agent, idempotency_key="form-123")
    second = reply(ticket, agent, idempotency_key="form-123")
    assert first.id == second.id
    assert len(recording_channel.sent) == 1


def test_a_second_delivery_job_for_the_same_message_sends_nothing(
    make_ticket, agent, recording_channel
):
    ticket = make_ticket()
    message = reply(ticket, agent)
    assert run(deliver_message, message.id) == "skipped"
    assert len(recording_channel.sent) == 1


def test_temporary_failure_is_retried_with_backoff_then_sent(make_ticket, agent, recording_channel):
    recording_channel.fail_with = ConnectionError("SMTP server unreachable")
    ticket = make_ticket()
    message = reply(ticket, agent)
    assert message.status is DeliveryStatus.QUEUED
    assert "unreachable" in message.error and message.next_attempt_at is not None
    recording_channel.fail_with = None
    assert run(deliver_message, message.id) == "sent"
    db.session.refresh(message)
    assert message.status is DeliveryStatus.SENT and message.error is None


def test_permanent_failure_is_recorded_on_the_message_without_retry(
    make_ticket, agent, recording_channel
):
    recording_channel.fail_with = PermanentDeliveryError("550 no such user")
    message = reply(make_ticket(), agent)
    assert message.status is DeliveryStatus.FAILED
    assert message.error == "550 no such user"
    assert message.attempts == 1


def test_delivery_gives_up_after_the_maximum_attempts(make_ticket, agent, recording_channel):
    from helpdesk.delivery import MAX_ATTEMPTS

    recording_channel.fail_with = TimeoutError("timed out")
    message = reply(make_ticket(), agent)
    for _ in range(MAX_ATTEMPTS - 1):
        run(deliver_message, message.id)
    db.session.refresh(message)
    assert message.status is DeliveryStatus.FAILED
    assert "gave up" in message.error


def test_sweep_requeues_a_reply_whose_job_was_lost(make_ticket, agent, recording_channel):
    recording_channel.fail_with = ConnectionError("down")
    message = reply(make_ticket(), agent)
    recording_channel.fail_with = None
    message.next_attempt_at = message.next_attempt_at - timedelta(hours=1)
    db.session.commit()
    assert run(sweep_deliveries)["requeued"] == 1
    db.session.refresh(message)
    assert message.status is DeliveryStatus.SENT


def test_sweep_flags_an_interrupted_send_instead_of_sending_twice(
    make_ticket, agent, recording_channel
):
    recording_channel.supports_idempotent_retry = False
    message = reply(make_ticket(), agent)
    message.status = DeliveryStatus.SENDING  # as if the worker died mid-send
    message.created_at = message.created_at - timedelta(hours=1)
    db.session.commit()
    assert run(sweep_deliveries) == {"requeued": 0, "flagged": 1}
    db.session.refresh(message)
    assert message.status is DeliveryStatus.FAILED
    assert "may or may not" in message.error
    assert len(recording_channel.sent) == 1


def test_notes_are_never_delivered(make_ticket, agent, recording_channel):
    ticket = make_ticket()
    note = add_note(ticket, actor=Actor.for_user(agent), author=agent, body="internal only")
    db.session.commit()
    assert note.status is DeliveryStatus.RECEIVED
    assert recording_channel.sent == []


def test_empty_reply_is_refused(make_ticket, agent, recording_channel):
    with pytest.raises(OperationError):
        reply_to_ticket(make_ticket(), actor=Actor.for_user(agent), body="   ")


def test_note_mentioning_an_agent_notifies_them(make_ticket, make_user, agent):
    from helpdesk.models import Notification

    noor = make_user("agent", email="noor@rapport.test", name="Noor Nassar")
    ticket = make_ticket()
    add_note(ticket, actor=Actor.for_user(agent), author=agent, body="@noor please look")
    db.session.commit()
    notes = db.session.query(Notification).filter_by(user_id=noor.id, kind="mention").all()
    assert len(notes) == 1 and notes[0].ticket_id == ticket.id
