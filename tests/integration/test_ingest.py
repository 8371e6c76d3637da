"""ingest_message: the one funnel in, on a real database."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from channels.base import IdentityKind, InboundAttachment, SenderIdentity, ThreadingHints
from helpdesk import events
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.ingest import ingest_message
from helpdesk.models import Contact, Message, Ticket, TicketStatus
from helpdesk.operations.tickets import close_ticket, set_status, solve_ticket
from helpdesk.tokens import ticket_token
from tests.factories import inbound


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_first_message_creates_contact_and_ticket(app):
    result = ingest_message(inbound("Hi there", sender="Ada@Example.TEST"))
    db.session.commit()
    assert result.created_contact and result.created_ticket
    assert result.ticket.status is TicketStatus.NEW
    assert result.ticket.subject == "Parcel missing"
    assert result.message.contact.email == "ada@example.test"
    assert result.ticket.is_unread


def test_same_external_id_twice_is_stored_once(app):
    msg = inbound(external_id="abc@mail")
    first = ingest_message(msg)
    db.session.commit()
    second = ingest_message(msg)
    db.session.commit()
    assert second.is_duplicate
    assert second.message.id == first.message.id
    assert count(Message) == 1 and count(Ticket) == 1


def test_same_external_id_on_another_channel_is_not_a_duplicate(app):
    ingest_message(inbound(external_id="42"))
    ingest_message(
        inbound(external_id="42", channel="sms", kind=IdentityKind.PHONE, sender="+3612345678")
    )
    db.session.commit()
    assert count(Message) == 2


def test_concurrent_ingest_of_one_message_stores_it_once(app):
    msg = inbound(external_id="race@mail", sender="race@example.test")
    results = []
    errors = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        with app.app_context():
            try:
                barrier.wait()
                results.append(ingest_message(msg).is_duplicate)
                db.session.commit()
            except Exception as exc:  # pragma: no cover - shown on failure
                errors.append(exc)
                db.session.rollback()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert count(Message) == 1
    assert count(Contact) == 1
    assert results.count(False) == 1


def test_reply_quoting_stored_message_id_joins_the_ticket(app):
    first = ingest_message(inbound(threading=ThreadingHints(message_id="m1@example.test")))
    db.session.commit()
    follow = ingest_message(
        inbound(
            "And another thing",
            threading=ThreadingHints(message_id="m2@x", references=("m1@example.test",)),
        )
    )
    db.session.commit()
    assert follow.ticket.id == first.ticket.id
    assert follow.resolver == "by_stored_message_id"


def test_signed_token_threads_but_forged_token_does_not(app):
    first = ingest_message(inbound())
    db.session.commit()
    good = ingest_message(
        inbound(threading=ThreadingHints(ticket_token=ticket_token(first.ticket.id)))
    )
    forged = ingest_message(
        inbound(threading=ThreadingHints(ticket_token=f"{first.ticket.id}-aaaaaaaaaa"))
    )
    db.session.commit()
    assert good.ticket.id == first.ticket.id
    assert forged.ticket.id != first.ticket.id


def test_subject_number_is_accepted_only_from_the_tickets_contact(app):
    first = ingest_message(inbound(sender="owner@example.test"))
    db.session.commit()
    hint = ThreadingHints(subject_ticket_number=first.ticket.id)
    own = ingest_message(inbound(sender="owner@example.test", threading=hint))
    stranger = ingest_message(inbound(sender="mallory@example.test", threading=hint))
    db.session.commit()
    assert own.ticket.id == first.ticket.id
    assert stranger.ticket.id != first.ticket.id


def test_participant_may_reply_by_subject_number(app):
    first = ingest_message(
        inbound(
            sender="owner@example.test",
            participants=(SenderIdentity(IdentityKind.EMAIL, "Colleague@Example.test"),),
        )
    )
    db.session.commit()
    reply = ingest_message(
        inbound(
            sender="colleague@example.test",
            threading=ThreadingHints(subject_ticket_number=first.ticket.id),
        )
    )
    db.session.commit()
    assert reply.ticket.id == first.ticket.id


def test_sms_continues_the_contacts_last_open_ticket(app):
    phone = dict(channel="sms", kind=IdentityKind.PHONE, sender="+36 1 234 5678", subject=None)
    first = ingest_message(inbound("hello", **phone))
    db.session.commit()
    second = ingest_message(inbound("are you there?", **phone))
    db.session.commit()
    assert second.ticket.id == first.ticket.id
    assert first.ticket.subject == "hello"


def test_email_without_threading_hints_starts_a_new_ticket(app):
    first = ingest_message(inbound())
    second = ingest_message(inbound())
    db.session.commit()
    assert first.ticket.id != second.ticket.id
    assert first.message.contact_id == second.message.contact_id


def test_reply_to_recently_closed_ticket_reopens_it(app):
    first = ingest_message(inbound(threading=ThreadingHints(message_id="orig@x")))
    close_ticket(first.ticket, actor=Actor.system())
    db.session.commit()
    reply = ingest_message(inbound(threading=ThreadingHints(in_reply_to=("orig@x",))))
    db.session.commit()
    assert reply.reopened
    assert reply.ticket.status is TicketStatus.OPEN
    assert reply.ticket.reopen_count == 1


def test_reply_to_long_closed_ticket_opens_a_linked_follow_up(app):
    first = ingest_message(inbound(threading=ThreadingHints(message_id="old@x")))
    close_ticket(first.ticket, actor=Actor.system())
    first.ticket.closed_at = first.ticket.closed_at - timedelta(
        days=app.config["RAPPORT_REOPEN_DAYS"] + 1
    )
    db.session.commit()
    reply = ingest_message(inbound(threading=ThreadingHints(in_reply_to=("old@x",))))
    db.session.commit()
    assert reply.created_ticket
    assert reply.ticket.follows_up_id == first.ticket.id
    assert first.ticket.status is TicketStatus.CLOSED


def test_auto_reply_never_reopens_a_solved_ticket(app):
    first = ingest_message(inbound(threading=ThreadingHints(message_id="s@x")))
    solve_ticket(first.ticket, actor=Actor.system())
    db.session.commit()
    auto = ingest_message(
        inbound(
            "I am out of office", is_auto_reply=True, threading=ThreadingHints(in_reply_to=("s@x",))
        )
    )
    db.session.commit()
    assert auto.ticket.id == first.ticket.id
    assert auto.ticket.status is TicketStatus.SOLVED
    assert auto.message.is_auto_reply


def test_customer_reply_moves_pending_ticket_back_to_open(app):
    first = ingest_message(inbound(threading=ThreadingHints(message_id="p@x")))
    set_status(first.ticket, TicketStatus.PENDING, actor=Actor.system())
    db.session.commit()
    ingest_message(inbound(threading=ThreadingHints(in_reply_to=("p@x",))))
    db.session.commit()
    assert first.ticket.status is TicketStatus.OPEN


def test_html_is_sanitized_at_the_funnel_even_if_a_channel_forgot(app):
    result = ingest_message(inbound(html='<p onclick="x()">Hi<script>alert(1)</script></p>'))
    db.session.commit()
    assert "script" not in result.message.html
    assert "onclick" not in result.message.html
    assert "Hi" in result.message.html


def test_attachments_are_stored_by_content_hash_and_inline_cids_rewritten(app):
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    result = ingest_message(
        inbound(
            html='<p><img src="cid:logo@x"></p>',
            attachments=(
                InboundAttachment(
                    "logo.png", "image/png", png, content_id="logo@x", is_inline=True
                ),
                InboundAttachment(
                    "huge.iso",
                    "application/octet-stream",
                    b"",
                    skipped_reason="too large",
                    size=10**9,
                ),
            ),
        )
    )
    db.session.commit()
    stored, skipped = result.message.attachments
    assert stored.sha256 and stored.size == len(png)
    assert f"/attachments/{stored.id}/" in result.message.html
    assert skipped.sha256 is None and skipped.skipped_reason == "too large"


def test_events_fire_only_after_commit_and_not_after_rollback(app):
    seen: list[str] = []

    def listener(sender, event, **_):
        seen.append(event.name)

    events.message_received.connect(listener)
    try:
        ingest_message(inbound())
        assert seen == []
        db.session.rollback()
        assert seen == []
        ingest_message(inbound())
        db.session.commit()
        assert seen == ["message.received"]
    finally:
        events.message_received.disconnect(listener)


@pytest.mark.parametrize(
    "kind,raw,stored",
    [
        (IdentityKind.EMAIL, " Ada@Example.TEST ", "ada@example.test"),
        (IdentityKind.PHONE, "+36 (1) 234-5678", "+3612345678"),
        (IdentityKind.WHATSAPP, "whatsapp:+36 1 234 5678", "+3612345678"),
    ],
)
def test_identities_are_normalised_so_one_person_is_one_contact(app, kind, raw, stored):
    a = ingest_message(inbound(channel="x", kind=kind, sender=raw))
    b = ingest_message(inbound(channel="x", kind=kind, sender=stored))
    db.session.commit()
    assert a.message.contact_id == b.message.contact_id
    assert a.message.contact.identities[0].value == stored


def test_events_from_a_rolled_back_savepoint_are_dropped_but_earlier_ones_kept(app):
    seen: list[int] = []

    def listener(sender, event, **_):
        seen.append(event.ticket_id)

    events.ticket_created.connect(listener)
    try:
        events.on_commit(events.TicketCreated(actor=Actor.system(), ticket_id=1))
        try:
            with db.session.begin_nested():
                events.on_commit(events.TicketCreated(actor=Actor.system(), ticket_id=2))
                raise RuntimeError("undo the savepoint")
        except RuntimeError:
            pass
        with db.session.begin_nested():
            events.on_commit(events.TicketCreated(actor=Actor.system(), ticket_id=3))
        assert seen == []
        db.session.commit()
        assert seen == [1, 3]
    finally:
        events.ticket_created.disconnect(listener)


def test_new_ticket_remembers_its_inbox_and_goes_to_the_inbox_team(app):
    from helpdesk.operations.users import create_team

    team = create_team(actor=Actor.system(), name="Billing")
    db.session.commit()
    result = ingest_message(inbound(inbox="email:7", team_id=team.id))
    db.session.commit()
    assert result.ticket.inbox == "email:7"
    assert result.ticket.team_id == team.id


def test_a_ticket_loaded_in_the_session_agrees_with_its_row_after_a_reply(app):
    first = ingest_message(inbound(threading=ThreadingHints(message_id="a1@x")))
    db.session.commit()
    ticket = db.session.get(Ticket, first.ticket_id)
    ticket.is_unread = False
    db.session.commit()
    before = ticket.last_activity_at
    ingest_message(
        inbound("More", threading=ThreadingHints(message_id="a2@x", in_reply_to=("a1@x",)))
    )
    # Same transaction: the loaded object shows what the row now holds, and is not dirty.
    assert ticket.is_unread and ticket.last_activity_at > before
    assert ticket not in db.session.dirty
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Ticket, first.ticket_id).is_unread


def test_a_reply_to_a_merged_ticket_lands_on_the_ticket_it_was_merged_into(app):
    from helpdesk.operations.tickets import merge_tickets

    old = ingest_message(inbound(threading=ThreadingHints(message_id="old@x"))).ticket_id
    kept = ingest_message(inbound("Other", threading=ThreadingHints(message_id="kept@x"))).ticket_id
    db.session.commit()
    merge_tickets(db.session.get(Ticket, old), db.session.get(Ticket, kept), actor=Actor.system())
    db.session.commit()
    reply = ingest_message(
        inbound("Re", threading=ThreadingHints(message_id="r@x", in_reply_to=("old@x",)))
    )
    db.session.commit()
    assert reply.ticket_id == kept and not reply.created_ticket


def test_a_new_conversation_on_a_round_robin_team_goes_to_the_next_agent_who_is_in(app, make_user):
    from helpdesk.models import Notification
    from helpdesk.operations.users import create_team

    away = make_user("agent", name="Away Agent", is_away=True)
    here = make_user("agent", name="Here Agent")
    team = create_team(actor=Actor.system(), name="Desk", members=[away, here], round_robin=True)
    db.session.commit()
    result = ingest_message(inbound(team_id=team.id))
    db.session.commit()
    assert result.ticket.assignee_id == here.id
    notified = db.session.scalars(select(Notification.user_id)).all()
    assert notified == [here.id]
