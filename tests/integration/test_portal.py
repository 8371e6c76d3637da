"""The customer portal: magic-link sign-in, own tickets only, replies through ingest, rewards.

Mail goes to a real aiosmtpd; the app gets the portal through
``helpdesk.portal.init_app`` (as ``create_app`` will do).
"""

from __future__ import annotations

import email
import logging
import re
import time
import uuid
from decimal import Decimal
from email import policy
from typing import Any

import pytest
from sqlalchemy import func, select

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import AuditEvent, DeliveryStatus, Direction, Message, Ticket, TicketStatus
from helpdesk.operations.contacts import merge_contacts
from helpdesk.operations.messages import add_note, reply_to_ticket
from helpdesk.operations.tickets import set_status
from helpdesk.portal.auth import mint_link_token
from tests.factories import inbound
from tests.integration.email.mailservers import start_smtp

SYSTEM = Actor.system("test")
LINK = re.compile(r"https?://[^/\s]+(/portal/sign-in/[\w.\-]+)")


@pytest.fixture(scope="module")
def smtp_server():
    server = start_smtp()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server):
    smtp_server.clear()
    return smtp_server


@pytest.fixture
def app(app):
    from helpdesk.portal import init_app

    init_app(app)

    @app.before_request
    def _forget_per_request_caches() -> None:
        # The test keeps one app context across requests, so g outlives each one:
        # Flask-Babel caches the locale there and Flask-WTF the CSRF token.
        from flask import g

        g.pop("_flask_babel", None)
        g.pop("csrf_token", None)

    return app


@pytest.fixture
def mailbox(app, smtp_server):
    from channels.email.mailboxes import create_mailbox
    from channels.email.models import Security

    box = create_mailbox(
        actor=SYSTEM,
        name="Support",
        address="support@example.test",
        from_name="Rapport Support",
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_security=Security.NONE,
    )
    db.session.commit()
    return box


@pytest.fixture
def customer(make_contact):
    return make_contact(name="Ada Lovelace", email=f"ada-{uuid.uuid4().hex[:6]}@example.test")


@pytest.fixture
def stranger(make_contact):
    return make_contact(name="Grace Hopper", email=f"grace-{uuid.uuid4().hex[:6]}@example.test")


def sign_in(client, contact) -> None:
    """Follow a fresh link for ``contact``, as its mail would let them."""
    response = client.post(f"/portal/sign-in/{mint_link_token(contact.id, uuid.uuid4().hex)}")
    assert response.status_code == 302, response.data[:300]


def page(response) -> str:
    return response.get_data(as_text=True)


def mail(received) -> email.message.EmailMessage:
    return email.message_from_bytes(received.data, policy=policy.default)


def ticket_ids(html: str) -> set[int]:
    return {int(x) for x in re.findall(r'data-ticket-id="(\d+)"', html)}


def messages_on(ticket) -> list[Message]:
    return list(
        db.session.scalars(
            select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id)
        )
    )


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


# ------------------------------------------------------------------ signing in


def test_a_known_address_gets_a_link_that_signs_in_once(app, client, customer, mailbox, smtp):
    response = client.post("/portal/", data={"email": customer.email.upper()})

    assert response.status_code == 302 and response.location.endswith("/portal/sent")
    (got,) = smtp.received
    assert got.rcpt_tos == [customer.email]
    letter = mail(got)
    assert letter["Subject"] == "Your sign-in link"
    assert letter["Auto-Submitted"] == "auto-generated"
    assert "Rapport Support" in letter["From"]
    path = LINK.search(letter.get_content()).group(1)

    # Opening the link (as a mail scanner would) does not spend it.
    assert client.get(path).status_code == 200
    assert client.get(path).status_code == 200
    signed_in = client.post(path)
    assert signed_in.status_code == 302 and signed_in.location.endswith("/portal/tickets")
    assert client.get("/portal/tickets").status_code == 200

    other_browser = app.test_client()
    again = other_browser.post(path)
    assert again.status_code == 410
    assert "already used" in page(again)
    assert other_browser.get("/portal/tickets").status_code == 302
    assert count(AuditEvent, AuditEvent.action == "portal.link_used") == 1


def test_a_link_used_twice_at_once_signs_in_only_once(app, customer):
    import threading

    from helpdesk.portal.auth import LinkError, use_link

    token = mint_link_token(customer.id, uuid.uuid4().hex)
    db.session.commit()  # our own open transaction would hold SQLite's write lock
    barrier = threading.Barrier(4)
    outcomes = []

    def follow():
        with app.app_context():
            try:
                barrier.wait()
                use_link(token)
                db.session.commit()
                outcomes.append("signed in")
            except LinkError as exc:
                db.session.rollback()
                outcomes.append(exc.reason)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=follow) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["signed in", "used", "used", "used"]


def test_an_unknown_address_gets_the_same_answer_and_no_mail(client, customer, mailbox, smtp):
    unknown = client.post("/portal/", data={"email": "nobody@example.test"})
    known = client.post("/portal/", data={"email": customer.email})

    assert unknown.status_code == known.status_code == 302
    assert unknown.location == known.location
    sent_page = page(client.get(unknown.location))
    assert "If we know this address, we have sent a sign-in link to it." in sent_page
    assert [r.rcpt_tos for r in smtp.received] == [[customer.email]]


def test_an_expired_link_is_refused_with_a_clear_page(client, customer, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: 1_000_000_000.0)
        token = mint_link_token(customer.id, uuid.uuid4().hex)

    shown = client.get(f"/portal/sign-in/{token}")
    used = client.post(f"/portal/sign-in/{token}")

    assert shown.status_code == used.status_code == 410
    assert "This sign-in link has expired" in page(used)
    assert "Send me a new link" in page(used)
    assert client.get("/portal/tickets").status_code == 302


def test_a_forged_link_is_refused(client, customer):
    from itsdangerous import URLSafeTimedSerializer

    forged = URLSafeTimedSerializer("guessed-secret", salt="rapport.portal.sign-in").dumps(
        {"c": customer.id, "n": "x"}
    )

    response = client.post(f"/portal/sign-in/{forged}")

    assert response.status_code == 404
    assert "not valid" in page(response)
    assert client.get("/portal/tickets").status_code == 302


def test_without_a_mailbox_no_link_is_sent_and_admins_are_told(
    client, customer, make_user, login, caplog
):
    with caplog.at_level(logging.WARNING, logger="helpdesk.portal.operations"):
        response = client.post("/portal/", data={"email": customer.email})

    assert response.status_code == 302 and response.location.endswith("/portal/sent")
    assert "no active mailbox" in caplog.text
    assert count(AuditEvent, AuditEvent.action == "portal.link_not_sent") == 1
    assert "no mailbox is active" not in page(client.get("/portal/"))
    login(make_user("admin", email="root@example.com"))
    assert "no mailbox is active" in page(client.get("/portal/"))


def test_signing_in_starts_a_fresh_session(client, customer):
    with client.session_transaction() as session:
        session["planted"] = "by someone else"
        session["_user_id"] = "1"

    sign_in(client, customer)

    with client.session_transaction() as session:
        assert "planted" not in session and "_user_id" not in session
        assert session["portal_contact_id"] == customer.id


def test_sign_out_ends_the_portal_session(client, customer):
    sign_in(client, customer)

    response = client.post("/portal/sign-out")

    assert response.status_code == 302
    assert client.get("/portal/tickets").status_code == 302


def test_portal_pages_need_a_portal_session_not_an_agent_one(client, make_user, login):
    login(make_user("admin", email="boss@example.com"))

    response = client.get("/portal/tickets")

    assert response.status_code == 302
    assert "/portal/?next=/portal/tickets" in response.location


# ------------------------------------------------------------------ own data only


def test_customers_see_only_their_own_tickets(client, customer, stranger, make_ticket):
    mine = make_ticket(contact=customer, subject="My kettle")
    theirs = make_ticket(contact=stranger, subject="Their refund")
    sign_in(client, customer)

    listing = page(client.get("/portal/tickets"))

    assert ticket_ids(listing) == {mine.id}
    assert "Their refund" not in listing
    assert theirs.id


def test_another_customers_ticket_answers_404_like_a_missing_one(
    client, customer, stranger, make_ticket
):
    theirs = make_ticket(contact=stranger, subject="Their refund")
    sign_in(client, customer)

    foreign = client.get(f"/portal/tickets/{theirs.id}")
    missing = client.get("/portal/tickets/987654")
    reply = client.post(f"/portal/tickets/{theirs.id}/reply", data={"body": "mine now"})

    assert foreign.status_code == missing.status_code == reply.status_code == 404
    assert page(foreign) == page(missing)
    assert "Their refund" not in page(foreign)
    assert messages_on(theirs) == []


def test_a_merged_away_contact_signs_in_as_the_contact_it_was_merged_into(
    client, make_contact, make_ticket
):
    kept = make_contact(name="Ada", email=f"ada-{uuid.uuid4().hex[:6]}@example.test")
    old = make_contact(name="Ada (old)", email=f"old-{uuid.uuid4().hex[:6]}@example.test")
    first = make_ticket(contact=kept, subject="First")
    second = make_ticket(contact=old, subject="Second")
    token = mint_link_token(old.id, uuid.uuid4().hex)
    merge_contacts(old, kept, actor=SYSTEM)
    db.session.commit()

    assert client.post(f"/portal/sign-in/{token}").status_code == 302

    assert ticket_ids(page(client.get("/portal/tickets"))) == {first.id, second.id}


def test_internal_notes_are_never_shown_and_text_is_escaped(app, client, customer, make_user):
    agent = make_user("agent", name="Alice Agent")
    result = app_ingest(customer, "Hello <script>alert(1)</script>")
    ticket = result.ticket
    add_note(ticket, actor=Actor.for_user(agent), author=agent, body="Customer is on thin ice")
    reply_to_ticket(ticket, actor=Actor.for_user(agent), author=agent, body="We are on it, Ada.")
    db.session.commit()
    sign_in(client, customer)

    shown = page(client.get(f"/portal/tickets/{ticket.id}"))

    assert "We are on it, Ada." in shown and "Alice Agent" in shown
    assert "thin ice" not in shown
    assert "<script>alert(1)</script>" not in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown


def app_ingest(contact, text: str, **kw: Any):
    from helpdesk.ingest import ingest_message

    result = ingest_message(inbound(text, sender=contact.email, **kw))
    db.session.commit()
    return result


# ------------------------------------------------------------------ writing


def test_a_reply_threads_onto_the_ticket_and_reopens_a_solved_one(client, customer):
    ticket = app_ingest(customer, "My kettle is broken").ticket
    set_status(ticket, TicketStatus.SOLVED, actor=SYSTEM)
    db.session.commit()
    sign_in(client, customer)

    response = client.post(
        f"/portal/tickets/{ticket.id}/reply",
        data={"body": "It broke again.", "key": uuid.uuid4().hex},
    )

    assert response.status_code == 302
    assert f"/portal/tickets/{ticket.id}#message-" in response.location
    db.session.expire_all()
    last = messages_on(ticket)[-1]
    assert (last.channel, last.direction, last.text) == (
        "portal",
        Direction.INBOUND,
        "It broke again.",
    )
    assert last.contact_id == customer.id
    assert ticket.status is TicketStatus.OPEN and ticket.reopen_count == 1
    assert "It broke again." in page(client.get(f"/portal/tickets/{ticket.id}"))


def test_a_double_submit_stores_one_message(client, customer):
    ticket = app_ingest(customer, "Where is my parcel?").ticket
    sign_in(client, customer)
    form = {"body": "Any news?", "key": uuid.uuid4().hex}

    first = client.post(f"/portal/tickets/{ticket.id}/reply", data=form)
    second = client.post(f"/portal/tickets/{ticket.id}/reply", data=form)

    assert first.status_code == second.status_code == 302
    assert first.location == second.location
    assert [m.text for m in messages_on(ticket)] == ["Where is my parcel?", "Any news?"]


def test_an_empty_reply_is_refused_with_a_message(client, customer):
    ticket = app_ingest(customer, "Hello").ticket
    sign_in(client, customer)

    response = client.post(f"/portal/tickets/{ticket.id}/reply", data={"body": "   "})

    assert response.status_code == 422
    assert "Write a message first." in page(response)
    assert len(messages_on(ticket)) == 1


def test_a_new_request_opens_one_portal_ticket_even_when_sent_twice(client, customer):
    sign_in(client, customer)
    form = {"subject": "Wrong size", "body": "The shoes are too small.", "key": uuid.uuid4().hex}

    first = client.post("/portal/tickets/new", data=form)
    second = client.post("/portal/tickets/new", data=form)

    assert first.location == second.location
    (ticket,) = db.session.scalars(select(Ticket).where(Ticket.contact_id == customer.id)).all()
    assert (ticket.channel, ticket.subject, ticket.status) == (
        "portal",
        "Wrong size",
        TicketStatus.NEW,
    )
    assert [m.text for m in messages_on(ticket)] == ["The shoes are too small."]
    assert first.location.endswith(f"/portal/tickets/{ticket.id}")


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}])
def test_the_reply_form_is_protected_against_cross_site_posts(client, customer):
    ticket = app_ingest(customer, "Hello").ticket
    sign_in_with_csrf(client, customer)

    forged = client.post(f"/portal/tickets/{ticket.id}/reply", data={"body": "from evil.example"})

    assert forged.status_code == 400
    assert len(messages_on(ticket)) == 1
    form = page(client.get(f"/portal/tickets/{ticket.id}"))
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    real = client.post(
        f"/portal/tickets/{ticket.id}/reply", data={"body": "from me", "csrf_token": token}
    )
    assert real.status_code == 302
    assert len(messages_on(ticket)) == 2


def sign_in_with_csrf(client, contact) -> None:
    path = f"/portal/sign-in/{mint_link_token(contact.id, uuid.uuid4().hex)}"
    token = re.search(r'name="csrf_token" value="([^"]+)"', page(client.get(path))).group(1)
    assert client.post(path, data={"csrf_token": token}).status_code == 302


# ------------------------------------------------------------------ the portal channel


def test_an_agents_reply_on_a_portal_ticket_is_shown_and_mailed(
    client, customer, make_user, mailbox, smtp
):
    sign_in(client, customer)
    client.post(
        "/portal/tickets/new",
        data={"subject": "Lost parcel", "body": "It never came.", "key": uuid.uuid4().hex},
    )
    ticket = db.session.scalars(select(Ticket).where(Ticket.contact_id == customer.id)).one()
    agent = make_user("agent", name="Alice Agent")

    reply = reply_to_ticket(ticket, actor=Actor.for_user(agent), author=agent, body="Resent today.")
    db.session.commit()

    db.session.expire_all()
    assert reply.status is DeliveryStatus.SENT
    (got,) = smtp.received
    letter = mail(got)
    assert got.rcpt_tos == [customer.email]
    assert letter["Subject"] == f"New reply to your request [#{ticket.id}]"
    assert "Resent today." in letter.get_content()
    assert f"/portal/tickets/{ticket.id}" in letter.get_content()
    assert letter["Message-ID"].strip("<>") == reply.rfc_message_id
    assert reply.rfc_message_id.startswith("rapport.")
    assert "Resent today." in page(client.get(f"/portal/tickets/{ticket.id}"))


def test_an_answer_to_the_notification_mail_joins_the_same_ticket(
    client, customer, make_user, mailbox, smtp
):
    sign_in(client, customer)
    client.post(
        "/portal/tickets/new",
        data={"subject": "Lost parcel", "body": "It never came.", "key": uuid.uuid4().hex},
    )
    ticket = db.session.scalars(select(Ticket).where(Ticket.contact_id == customer.id)).one()
    agent = make_user("agent")
    reply = reply_to_ticket(ticket, actor=Actor.for_user(agent), author=agent, body="Resent.")
    db.session.commit()
    from channels.base import ThreadingHints

    answer = app_ingest(
        customer,
        "Thanks!",
        threading=ThreadingHints(in_reply_to=(reply.rfc_message_id,)),
        subject=f"Re: New reply to your request [#{ticket.id}]",
    )

    assert answer.ticket.id == ticket.id


def test_without_a_mailbox_a_portal_reply_is_still_delivered_to_the_portal(
    client, customer, make_user, smtp
):
    sign_in(client, customer)
    client.post(
        "/portal/tickets/new",
        data={"subject": "Hi", "body": "Question", "key": uuid.uuid4().hex},
    )
    ticket = db.session.scalars(select(Ticket).where(Ticket.contact_id == customer.id)).one()
    agent = make_user("agent")

    reply = reply_to_ticket(ticket, actor=Actor.for_user(agent), author=agent, body="Answer")
    db.session.commit()

    db.session.expire_all()
    assert reply.status is DeliveryStatus.SENT and smtp.received == []


# ------------------------------------------------------------------ rewards


@pytest.mark.parametrize("app_config", [{"RAPPORT_SHOP_URL": "https://shop.example/?utm=portal"}])
def test_rewards_show_own_vouchers_points_tier_and_referral_link(
    client, customer, stranger, make_user
):
    from automation.incentives.operations import issue_goodwill_voucher
    from automation.loyalty.models import ReferralCode
    from automation.loyalty.operations import award_points

    agent = Actor.for_user(make_user("admin"))
    mine = issue_goodwill_voucher(customer, actor=agent, amount=Decimal("15")).voucher
    theirs = issue_goodwill_voucher(stranger, actor=agent, amount=Decimal("25")).voucher
    award_points(customer, 120, actor=SYSTEM, reason="thanks", key=f"k-{uuid.uuid4().hex}")
    award_points(stranger, 999, actor=SYSTEM, reason="thanks", key=f"k-{uuid.uuid4().hex}")
    db.session.commit()
    sign_in(client, customer)

    shown = page(client.get("/portal/rewards"))

    assert mine.display_code in shown and "Ready to use" in shown
    assert theirs.display_code not in shown
    assert 'id="points-available">120<' in shown
    code = db.session.scalars(
        select(ReferralCode.code).where(ReferralCode.contact_id == customer.id)
    ).one()
    assert f'value="https://shop.example/?utm=portal&amp;ref={code}"' in shown


def test_the_referral_link_defaults_to_the_public_url(app, client, customer):
    sign_in(client, customer)

    shown = page(client.get("/portal/rewards"))

    assert f'value="{app.config["RAPPORT_PUBLIC_URL"]}?ref=' in shown


# ------------------------------------------------------------------ languages


def test_arabic_pages_are_right_to_left_and_the_choice_is_remembered(client, customer):
    assert '<html lang="ar" dir="rtl">' in page(client.get("/portal/?lang=ar"))
    assert '<html lang="ar" dir="rtl">' in page(client.get("/portal/sent"))
    assert '<html lang="en" dir="ltr">' in page(client.get("/portal/?lang=en"))


def test_the_browser_language_and_then_the_contacts_own_language_are_used(client, make_contact):
    greek = make_contact(
        name="Eleni", email=f"eleni-{uuid.uuid4().hex[:6]}@example.test", locale="el"
    )
    arabic = {"Accept-Language": "ar, en;q=0.5"}

    assert '<html lang="ar" dir="rtl">' in page(client.get("/portal/", headers=arabic))
    sign_in(client, greek)
    assert '<html lang="el" dir="ltr">' in page(client.get("/portal/tickets", headers=arabic))
    assert '<html lang="hu" dir="ltr">' in page(client.get("/portal/tickets?lang=hu"))


# ------------------------------------------------------------------ rate limits


@pytest.mark.parametrize(
    "app_config",
    [
        {
            "RATELIMIT_ENABLED": True,
            "RAPPORT_PORTAL_LINKS_PER_ADDRESS": "2/hour",
            "RAPPORT_PORTAL_LINKS_PER_IP": "4/hour",
        }
    ],
)
def test_link_requests_are_rate_limited_per_address_and_per_ip(client, customer, mailbox, smtp):
    from helpdesk.extensions import limiter

    limiter.reset()

    def ask(address, ip):
        return client.post("/portal/", data={"email": address}, environ_base={"REMOTE_ADDR": ip})

    one = f"one-{uuid.uuid4().hex[:6]}@example.test"
    per_address = [ask(one, f"192.0.2.{n}").status_code for n in (1, 2, 3)]
    assert per_address == [302, 302, 429]

    per_ip = [ask(f"{n}-{uuid.uuid4().hex}@example.test", "198.51.100.7") for n in range(5)]
    assert [r.status_code for r in per_ip] == [302, 302, 302, 302, 429]
    assert "Too many attempts" in page(per_ip[-1])

    assert ask(customer.email, "203.0.113.5").status_code == 302
    assert [r.rcpt_tos for r in smtp.received] == [[customer.email]]
