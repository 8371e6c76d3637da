"""EmailChannel: replies as real SMTP mail (checked on what aiosmtpd received), threading,
bounces, auto-acknowledgements."""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select

from channels.email.models import AutoAcknowledgement
from helpdesk.extensions import db
from helpdesk.models import DeliveryStatus, Direction, Message, Ticket, TicketStatus
from helpdesk.operations.messages import Upload
from helpdesk.tokens import ticket_token
from tests.integration.email.conftest import SUPPORT, make_mail, reply

pytestmark = pytest.mark.slow


def received(smtp, index: int = -1) -> EmailMessage:
    return email.message_from_bytes(smtp.received[index].data, policy=policy.default)


def only_ticket() -> Ticket:
    return db.session.scalars(select(Ticket)).one()


def inbound_ticket(mailbox, append, poll, **mail) -> Ticket:
    append(make_mail(**mail))
    assert poll(mailbox).ingested == 1
    return only_ticket()


def test_reply_is_sent_as_multipart_mail_with_threading_headers_and_attachment(
    mailbox, append, poll, smtp, agent
):
    ticket = inbound_ticket(
        mailbox,
        append,
        poll,
        message_id="<first@client.example>",
        to=f"{SUPPORT}, Colleague <colleague@example.test>",
    )
    message = reply(
        ticket,
        agent,
        body="Hello **Ada**, here is the label.",
        uploads=[Upload("label.pdf", "application/pdf", b"%PDF-1.4 fake")],
    )

    assert message.status is DeliveryStatus.SENT, message.error
    (got,) = smtp.received
    assert got.mail_from == SUPPORT
    assert sorted(got.rcpt_tos) == ["ada@example.test", "colleague@example.test"]
    mail = received(smtp)
    assert mail["From"] == f"Rapport Support <{SUPPORT}>"
    assert mail["To"] == "Ada Lovelace <ada@example.test>"
    assert mail["Cc"] == "colleague@example.test"  # our own address is never Cc'd
    assert mail["Subject"] == f"Re: Parcel missing [#{ticket.id}]"
    token = ticket_token(ticket.id)
    assert re.fullmatch(rf"<rapport\.{token}\.[0-9a-f]+@example\.test>", mail["Message-ID"])
    assert message.rfc_message_id == mail["Message-ID"].strip("<>")
    assert mail["In-Reply-To"] == "<first@client.example>"
    assert mail["References"] == "<first@client.example>"
    assert mail["X-Rapport-Ticket"] == token
    assert mail["Auto-Submitted"] is None  # a person wrote it
    assert mail.get_content_type() == "multipart/mixed"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "Hello **Ada**" in text and "<strong>Ada</strong>" in html
    (attachment,) = list(mail.iter_attachments())
    assert attachment.get_filename() == "label.pdf"
    assert attachment.get_content() == b"%PDF-1.4 fake"


def test_second_reply_references_the_whole_thread(mailbox, append, poll, smtp, agent):
    ticket = inbound_ticket(mailbox, append, poll, message_id="<first@client.example>")
    first = reply(ticket, agent, body="One")
    reply(ticket, agent, body="Two")
    mail = received(smtp)
    assert mail["In-Reply-To"] == f"<{first.rfc_message_id}>"
    assert mail["References"].split() == ["<first@client.example>", f"<{first.rfc_message_id}>"]
    assert mail["Subject"] == f"Re: Parcel missing [#{ticket.id}]"


def test_customer_reply_to_our_mail_joins_the_ticket(mailbox, append, poll, smtp, agent):
    ticket = inbound_ticket(mailbox, append, poll)
    ours = reply(ticket, agent)
    append(
        make_mail(
            subject=f"Re: Parcel missing [#{ticket.id}]",
            body="Thanks!",
            headers={
                "In-Reply-To": f"<{ours.rfc_message_id}>",
                "References": f"<{ours.rfc_message_id}>",
            },
        )
    )
    assert poll(mailbox).ingested == 1
    assert db.session.scalar(select(func.count()).select_from(Ticket)) == 1
    assert db.session.scalar(select(func.count()).select_from(Message)) == 3


OUTLOOK_REPLY = """\
From: Ada Lovelace <Ada@Example.test>
To: Rapport Support <support@example.test>
Subject: RE: Parcel missing [#{number}]
Thread-Topic: Parcel missing [#{number}]
Thread-Index: AQHZ1a2b3c4d5e6f7g8h9i0jAAABBBCCC==
Date: Mon, 6 May 2024 10:15:00 +0000
Message-ID: <AM0PR01MB1234ABCD@AM0PR01MB1234.eurprd01.prod.exchangelabs.com>
{threading}Accept-Language: en-GB, en-US
Content-Language: en-GB
X-MS-Has-Attach:
X-MS-TNEF-Correlator:
Content-Type: multipart/alternative;
 boundary="_000_AM0PR01MB1234_"
MIME-Version: 1.0

--_000_AM0PR01MB1234_
Content-Type: text/plain; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

It arrived this morning, thank you!

________________________________
From: Rapport Support <support@example.test>
Sent: 06 May 2024 09:00
To: Ada Lovelace <ada@example.test>
Subject: Re: Parcel missing [#{number}]

Your parcel is on its way.

--_000_AM0PR01MB1234_
Content-Type: text/html; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

<html><head><meta http-equiv=3D"Content-Type" content=3D"text/html; charset=
=3Dus-ascii"></head><body><div class=3D"WordSection1"><p class=3D"MsoNormal=
">It arrived this morning, thank you!</p></div>
<div id=3D"divRplyFwdMsg" dir=3D"ltr"><hr style=3D"display:inline-block;wid=
th:98%"><b>From:</b> Rapport Support &lt;support@example.test&gt;<br><b>Sent:=
</b> 06 May 2024 09:00<br><b>Subject:</b> Re: Parcel missing [#{number}]</div>
<div>Your parcel is on its way.</div></body></html>

--_000_AM0PR01MB1234_--
"""


@pytest.mark.parametrize("keeps_headers", [True, False], ids=["with-references", "stripped"])
def test_reply_from_outlook_threads_and_keeps_only_the_new_text(
    mailbox, append, poll, smtp, agent, keeps_headers
):
    ticket = inbound_ticket(mailbox, append, poll)
    ours = reply(ticket, agent)
    threading = (
        f"In-Reply-To: <{ours.rfc_message_id}>\nReferences: <{ours.rfc_message_id}>\n"
        if keeps_headers
        else ""  # some Exchange setups drop both; the [#N] in the subject still threads
    )
    raw = OUTLOOK_REPLY.format(number=ticket.id, threading=threading).replace("\n", "\r\n")
    append(raw.encode())
    assert poll(mailbox).ingested == 1
    latest = db.session.scalars(
        select(Message).where(Message.direction == Direction.INBOUND).order_by(Message.id.desc())
    ).first()
    assert latest.ticket_id == ticket.id
    assert latest.reply_text == "It arrived this morning, thank you!"
    assert db.session.scalar(select(func.count()).select_from(Ticket)) == 1


def test_recipient_refused_with_5xx_fails_at_once_with_the_reason(
    mailbox, append, poll, smtp, agent
):
    ticket = inbound_ticket(mailbox, append, poll)
    smtp.reject.add("ada@example.test")
    message = reply(ticket, agent)
    assert message.status is DeliveryStatus.FAILED
    assert "550 5.1.1" in message.error and message.attempts == 1
    assert smtp.received == []


def test_temporary_smtp_refusal_is_retried_with_the_same_message_id(
    mailbox, append, poll, smtp, agent
):
    from helpdesk.delivery import deliver_message

    ticket = inbound_ticket(mailbox, append, poll)
    smtp.defer.add("ada@example.test")
    message = reply(ticket, agent)
    assert message.status is DeliveryStatus.QUEUED and "451" in message.error
    first_id, message_id = message.rfc_message_id, message.id
    smtp.defer.clear()
    db.session.commit()  # a worker never runs a job inside our open transaction
    assert deliver_message.call_local(message_id) == "sent"
    db.session.refresh(message)
    assert received(smtp)["Message-ID"] == f"<{first_id}>"


def _dsn(original_id: str, rcpt: str) -> bytes:
    return f"""\
Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.example.test>
To: {SUPPORT}
Subject: Undelivered Mail Returned to Sender
Date: Mon, 6 May 2024 10:00:00 +0000
Message-ID: <bounce-1@mx.example.test>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUND"

--BOUND
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.test. I'm sorry to have to inform you
that your message could not be delivered to one or more recipients.

--BOUND
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.test

Final-Recipient: rfc822; {rcpt}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown

--BOUND
Content-Type: text/rfc822-headers

From: Rapport Support <{SUPPORT}>
To: {rcpt}
Subject: Re: Parcel missing
Message-ID: <{original_id}>

--BOUND--
""".replace("\n", "\r\n").encode()


def test_bounce_marks_the_sent_reply_failed_with_the_reason(mailbox, append, poll, smtp, agent):
    ticket = inbound_ticket(mailbox, append, poll)
    ours = reply(ticket, agent)
    assert ours.status is DeliveryStatus.SENT
    sent_id = received(smtp)["Message-ID"].strip("<>")
    assert sent_id == ours.rfc_message_id

    append(_dsn(sent_id, "ada@example.test"))
    assert poll(mailbox).ingested == 1

    db.session.refresh(ours)
    assert ours.status is DeliveryStatus.FAILED
    assert ours.error == (
        "bounced: 550 5.1.1 <ada@example.test>: Recipient address rejected: User unknown"
    )
    assert db.session.scalar(select(func.count()).select_from(Ticket)) == 1
    db.session.refresh(ticket)
    assert ticket.status is TicketStatus.OPEN  # the bounce itself wakes nothing


def test_new_ticket_is_acknowledged_automatically_and_marked_as_automatic(
    make_mailbox, append, poll, smtp
):
    mailbox = make_mailbox(auto_acknowledge=True)
    ticket = inbound_ticket(mailbox, append, poll)
    (got,) = smtp.received
    mail = received(smtp)
    assert got.rcpt_tos == ["ada@example.test"]
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["X-Rapport-Loop"] == SUPPORT
    assert f"ticket #{ticket.id}" in mail.get_body(("plain",)).get_content()
    db.session.refresh(ticket)
    # An acknowledgement is not an answer: the ticket still waits for a person.
    assert ticket.status is TicketStatus.NEW and ticket.is_unread
    assert ticket.first_response_at is None
    ack = db.session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND)).one()
    assert ack.is_by_automation and ack.status is DeliveryStatus.SENT


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"Precedence": "bulk"},
        {"List-Id": "<news.shop.example>"},
        {"X-Autoreply": "yes"},
    ],
    ids=["auto-submitted", "bulk", "list", "x-autoreply"],
)
def test_auto_replies_and_bulk_mail_are_never_acknowledged(
    make_mailbox, append, poll, smtp, headers
):
    mailbox = make_mailbox(auto_acknowledge=True)
    append(make_mail(subject="Out of office", headers=headers))
    assert poll(mailbox).ingested == 1
    assert only_ticket() is not None
    assert smtp.received == []


def test_our_own_acknowledgement_coming_back_is_not_a_new_ticket(make_mailbox, append, poll, smtp):
    mailbox = make_mailbox(auto_acknowledge=True)
    inbound_ticket(mailbox, append, poll)
    append(smtp.received[0].data)  # e.g. the customer's server forwarded it back to us
    result = poll(mailbox)
    assert result.ingested == 0 and (result.ignored + result.skipped_known) == 1
    assert db.session.scalar(select(func.count()).select_from(Ticket)) == 1
    assert len(smtp.received) == 1


def test_acknowledgements_are_rate_limited_per_sender_in_the_database(
    make_mailbox, append, poll, smtp, app
):
    app.config["RAPPORT_EMAIL_AUTOACK_PER_HOUR"] = 2
    mailbox = make_mailbox(auto_acknowledge=True)
    append(*(make_mail(subject=f"Question {i}") for i in range(4)))
    append(make_mail(subject="Someone else", sender="bob@example.test"))
    assert poll(mailbox).ingested == 5
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == [
        "ada@example.test",
        "ada@example.test",
        "bob@example.test",
    ]
    assert db.session.scalar(select(func.count()).select_from(AutoAcknowledgement)) == 3


def test_a_mailbox_that_does_not_acknowledge_queues_no_acknowledgement_job(
    make_mailbox, append, poll, smtp, monkeypatch
):
    from channels.email import autoreply

    queued: list[int] = []
    monkeypatch.setattr(autoreply, "send_auto_acknowledgement", queued.append)
    mailbox = make_mailbox(auto_acknowledge=False)
    append(make_mail(subject="First"))
    assert poll(mailbox).ingested == 1
    assert queued == []

    mailbox.auto_acknowledge = True
    db.session.commit()
    append(make_mail(subject="Second", message_id="<second@client.example>"))
    assert poll(mailbox).ingested == 1
    second = db.session.scalars(select(Ticket).where(Ticket.subject == "Second")).one()
    assert queued == [second.id]
    assert smtp.received == []
