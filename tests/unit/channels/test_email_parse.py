"""Hand-written mails for the cases real inboxes throw at the email parser."""

# Greek and Arabic letters that look like Latin ones are the point of these tests.

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser

import pytest

from channels.base import IdentityKind
from channels.email import parse_email
from channels.email.filters import detect_bounce, is_auto_reply
from channels.email.html import html_to_text, sanitize_html
from channels.email.quotes import split_reply


def raw_mail(*headers: str, body: bytes | str = b"Hello\n") -> bytes:
    """Build raw RFC 5322 bytes from header lines and a body, with CRLF line ends."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    head = "\r\n".join(headers).encode("utf-8")
    return head + b"\r\n\r\n" + body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def basic(*extra: str, body: bytes | str = b"Hello\n") -> bytes:
    """A minimal valid text mail plus extra headers."""
    return raw_mail(
        "From: Customer <customer@example.com>",
        "To: support@rapport.test",
        "Subject: Help",
        "Date: Mon, 01 Jan 2024 10:00:00 +0000",
        "Message-ID: <m1@example.com>",
        *extra,
        body=body,
    )


def text_mail(charset: str, payload: bytes, *, cte: str = "8bit", subject: str = "Hi") -> bytes:
    return raw_mail(
        "From: a@example.com",
        f"Subject: {subject}",
        "MIME-Version: 1.0",
        f"Content-Type: text/plain; charset={charset}",
        f"Content-Transfer-Encoding: {cte}",
        body=payload,
    )


def as_message(raw: bytes) -> Message:
    return BytesParser().parsebytes(raw)


# Charsets --------------------------------------------------------------------


def test_gb2312_label_with_gbk_only_characters_decodes_as_gbk() -> None:
    word = "你好，喆"  # 喆 exists in GBK but not in GB2312
    subject = "=?gb2312?B?" + base64.b64encode(word.encode("gbk")).decode() + "?="
    message = parse_email(text_mail("gb2312", word.encode("gbk"), subject=subject))
    assert message.text == word
    assert message.subject == word


def test_iso_2022_jp_body_and_subject_decode() -> None:
    encoded = "こんにちは".encode("iso2022_jp")
    subject = "=?ISO-2022-JP?B?" + base64.b64encode(encoded).decode() + "?="
    message = parse_email(text_mail("ISO-2022-JP", encoded, cte="7bit", subject=subject))
    assert message.text == "こんにちは"
    assert message.subject == "こんにちは"


def test_utf7_body_decodes() -> None:
    message = parse_email(text_mail("UTF-7", b"Hi Mom -+Jjo--!", cte="7bit"))
    assert message.text == "Hi Mom -☺-!"


def test_windows_1253_greek_body_decodes() -> None:
    greek = "Καλημέρα, η παραγγελία μου δεν έφτασε."
    message = parse_email(text_mail("windows-1253", greek.encode("cp1253")))
    assert message.text == greek


def test_windows_1250_hungarian_body_decodes() -> None:
    hungarian = "Árvíztűrő tükörfúrógép: a rendelésem nem érkezett meg."
    message = parse_email(text_mail("windows-1250", hungarian.encode("cp1250")))
    assert message.text == hungarian


def test_unknown_charset_falls_back_to_utf8() -> None:
    message = parse_email(text_mail("x-klingon", "Grüße aus Köln".encode()))
    assert message.text == "Grüße aus Köln"


def test_unknown_charset_with_latin1_bytes_falls_back_to_a_single_byte_charset() -> None:
    message = parse_email(text_mail("x-klingon", "café crème".encode("latin-1")))
    assert message.text == "café crème"


def test_utf8_label_on_latin1_bytes_does_not_raise() -> None:
    message = parse_email(text_mail("utf-8", "naïve café".encode("latin-1")))
    assert message.text == "naïve café"


def test_raw_8bit_utf8_subject_is_decoded() -> None:
    raw = ("From: a@example.com\r\nSubject: Ελληνικά και magyar ő\r\n\r\nbody\r\n").encode()
    assert parse_email(raw).subject == "Ελληνικά και magyar ő"


def test_encoded_word_split_inside_a_multibyte_character_is_joined() -> None:
    data = "Árvíztűrő".encode()
    first, second = base64.b64encode(data[:1]).decode(), base64.b64encode(data[1:]).decode()
    raw = basic(body="x").replace(
        b"Subject: Help", f"Subject: =?UTF-8?B?{first}?= =?UTF-8?B?{second}?=".encode()
    )
    assert parse_email(raw).subject == "Árvíztűrő"


def test_arabic_rtl_text_survives_intact() -> None:
    arabic = "\u200fمرحبا، لم يصل طلبي رقم ١٢٣ بعد. شكراً لكم!"
    html = f'<div dir="rtl" lang="ar">{arabic}</div>'
    raw = raw_mail(
        "From: =?UTF-8?B?" + base64.b64encode("سارة".encode()).decode() + "?= <sara@example.com>",
        "Subject: =?UTF-8?B?" + base64.b64encode("طلبي".encode()).decode() + "?=",
        "MIME-Version: 1.0",
        'Content-Type: multipart/alternative; boundary="b"',
        body=(
            "--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
            + base64.b64encode(arabic.encode()).decode()
            + "\n--b\nContent-Type: text/html; charset=utf-8\n\n"
            + html
            + "\n--b--\n"
        ),
    )
    message = parse_email(raw)
    assert message.text == arabic
    assert message.reply_text == arabic
    assert message.subject == "طلبي"
    assert message.sender.display_name == "سارة"
    assert message.html is not None
    assert 'dir="rtl"' in message.html and arabic in message.html


# Headers, identities and threading -------------------------------------------------


def test_reply_to_wins_over_from_and_is_lower_cased() -> None:
    message = parse_email(basic("Reply-To: Real Person <Real.Person@Example.COM>"))
    assert message.sender.value == "real.person@example.com"
    assert message.sender.display_name == "Real Person"
    assert message.sender.kind is IdentityKind.EMAIL


def test_google_group_original_sender_wins_over_group_from() -> None:
    raw = basic("X-Original-Sender: jane@example.com").replace(
        b"From: Customer <customer@example.com>", b"From: 'Jane Doe' via ACME <acme@example.com>"
    )
    sender = parse_email(raw).sender
    assert sender.value == "jane@example.com"
    assert sender.display_name == "Jane Doe"


def test_missing_from_falls_back_to_return_path() -> None:
    raw = raw_mail("Return-Path: <bounce@example.net>", "Subject: x", body="hi")
    assert parse_email(raw).sender.value == "bounce@example.net"


def test_missing_every_sender_header_gives_placeholder_identity() -> None:
    message = parse_email(raw_mail("Subject: x", body="hi"))
    assert message.sender.value == "unknown@invalid"


def test_missing_subject_date_and_message_id_are_tolerated() -> None:
    raw = raw_mail("From: a@example.com", body="hi")
    message = parse_email(raw)
    assert message.subject is None
    assert message.sent_at is None
    assert message.threading.message_id is None
    assert message.external_id.startswith("sha256:")
    assert parse_email(raw).external_id == message.external_id


def test_external_id_is_the_message_id_without_brackets() -> None:
    assert parse_email(basic()).external_id == "m1@example.com"


def test_unparseable_date_gives_no_sent_at_and_valid_date_is_utc() -> None:
    assert parse_email(basic().replace(b"Mon, 01 Jan 2024", b"someday soon")).sent_at is None
    sent_at = parse_email(basic()).sent_at
    assert sent_at == datetime(2024, 1, 1, 10, tzinfo=UTC)


def test_cc_and_other_to_addresses_become_participants() -> None:
    raw = basic("Cc: Boss <BOSS@example.com>, customer@example.com").replace(
        b"To: support@rapport.test", b"To: support@rapport.test, colleague@example.com"
    )
    participants = parse_email(raw).participants
    assert [p.value for p in participants] == [
        "support@rapport.test",
        "colleague@example.com",
        "boss@example.com",
    ]
    assert participants[2].display_name == "Boss"


def test_threading_ids_are_collected_without_brackets() -> None:
    raw = basic("In-Reply-To: <a@x> <b@x>", "References: <r1@x>\r\n <r2@x>")
    threading = parse_email(raw).threading
    assert threading.in_reply_to == ("a@x", "b@x")
    assert threading.references == ("r1@x", "r2@x")


def test_ticket_token_is_read_from_the_rapport_header() -> None:
    assert parse_email(basic("X-Rapport-Ticket: tok.en-1")).threading.ticket_token == "tok.en-1"


def test_ticket_token_is_read_from_our_own_message_id_in_in_reply_to() -> None:
    raw = basic("In-Reply-To: <rapport.abc.def_sig.1700000000@help.example.com>")
    assert parse_email(raw).threading.ticket_token == "abc.def_sig"


def test_ticket_token_is_read_from_the_quoted_body() -> None:
    body = "Thanks!\n\n> Your ticket [rapport:AbC123.sig-x] was updated\n"
    assert parse_email(basic(body=body)).threading.ticket_token == "AbC123.sig-x"


def test_subject_ticket_number_is_extracted() -> None:
    raw = basic().replace(b"Subject: Help", b"Subject: Re: [#1234] Broken order")
    assert parse_email(raw).threading.subject_ticket_number == 1234


def test_metadata_is_json_serialisable_and_keeps_selected_headers() -> None:
    import json

    message = parse_email(basic("List-Id: <news.example.com>", "Precedence: list"))
    json.dumps(message.metadata)
    headers = message.metadata["headers"]
    assert isinstance(headers, dict)
    assert headers["List-Id"] == "<news.example.com>"
    assert message.metadata["to"] == ["support@rapport.test"]


# Attachments -------------------------------------------------------------------------


def multipart(*parts: str, subtype: str = "mixed") -> bytes:
    body = "".join(f"--BOUND\n{part}\n" for part in parts) + "--BOUND--\n"
    return raw_mail(
        "From: a@example.com",
        "Subject: files",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/{subtype}; boundary="BOUND"',
        body=body,
    )


TEXT_PART = "Content-Type: text/plain; charset=utf-8\n\nSee attached.\n"


def test_rfc2231_filename_is_decoded() -> None:
    part = (
        "Content-Type: application/pdf\n"
        "Content-Disposition: attachment;\n"
        " filename*0*=UTF-8''%C3%81rv%C3%ADzt%C5%B1r%C5%91;\n"
        " filename*1*=%20sz%C3%A1mla.pdf\n"
        "Content-Transfer-Encoding: base64\n\nJVBERi0=\n"
    )
    (attachment,) = parse_email(multipart(TEXT_PART, part)).attachments
    assert attachment.filename == "Árvíztűrő számla.pdf"
    assert attachment.data == b"%PDF-"


def test_rfc2047_encoded_filename_is_decoded() -> None:
    name = "=?UTF-8?B?" + base64.b64encode("Καλημέρα.txt".encode()).decode() + "?="
    part = f'Content-Type: text/plain; name="{name}"\nContent-Disposition: attachment\n\nx\n'
    (attachment,) = parse_email(multipart(TEXT_PART, part)).attachments
    assert attachment.filename == "Καλημέρα.txt"


def test_attachment_without_filename_gets_a_generated_name() -> None:
    part = "Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n"
    (attachment,) = parse_email(multipart(TEXT_PART, part)).attachments
    assert attachment.filename == "attachment_1.pdf"


def test_path_components_are_stripped_from_filenames() -> None:
    part = (
        'Content-Type: text/plain; name="..\\\\..\\\\evil.txt"\n'
        "Content-Disposition: attachment\n\nx\n"
    )
    (attachment,) = parse_email(multipart(TEXT_PART, part)).attachments
    assert attachment.filename == "evil.txt"


def test_forwarded_message_is_kept_as_eml_attachment() -> None:
    inner = "Subject: Original question\nFrom: other@example.com\n\nInner body\n"
    part = f"Content-Type: message/rfc822\n\n{inner}"
    message = parse_email(multipart(TEXT_PART, part))
    (attachment,) = message.attachments
    assert attachment.filename == "forwarded-message.eml"
    assert attachment.content_type == "message/rfc822"
    assert b"Original question" in attachment.data
    assert "Inner body" not in message.text


def test_tnef_winmail_dat_is_kept_as_attachment() -> None:
    part = "Content-Type: application/ms-tnef\nContent-Transfer-Encoding: base64\n\neJ8+IgEAAQ==\n"
    (attachment,) = parse_email(multipart(TEXT_PART, part)).attachments
    assert attachment.filename == "winmail.dat"
    assert attachment.data.startswith(b"x\x9f>")


def test_oversize_attachment_is_skipped_with_reason() -> None:
    data = base64.b64encode(b"x" * 100).decode()
    part = (
        'Content-Type: application/zip; name="big.zip"\n'
        f"Content-Transfer-Encoding: base64\n\n{data}\n"
    )
    (attachment,) = parse_email(multipart(TEXT_PART, part), max_attachment_bytes=10).attachments
    assert attachment.data == b""
    assert attachment.size == 100
    assert attachment.skipped_reason == "too large (100 bytes, limit 10)"


def test_cid_referenced_image_is_inline_and_cid_survives_sanitizing() -> None:
    html = 'Content-Type: text/html; charset=utf-8\n\n<p>Look:</p><img src="cid:logo@x">\n'
    image = (
        "Content-Type: image/png\nContent-ID: <logo@x>\nContent-Transfer-Encoding: base64\n\n"
        "iVBORw0KGgo=\n"
    )
    message = parse_email(multipart(html, image, subtype="related"))
    (attachment,) = message.attachments
    assert attachment.is_inline
    assert attachment.content_id == "logo@x"
    assert message.html is not None and 'src="cid:logo@x"' in message.html


def test_inline_disposition_image_that_nothing_references_is_a_normal_attachment() -> None:
    image = (
        'Content-Type: image/png; name="photo.png"\nContent-Disposition: inline; '
        'filename="photo.png"\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n'
    )
    (attachment,) = parse_email(multipart(TEXT_PART, image)).attachments
    assert not attachment.is_inline


def test_uuencoded_body_becomes_an_attachment() -> None:
    body = "Here it is:\n\nbegin 644 hello.txt\n&:&5L;&\\*\n`\nend\n\nBye\n"
    message = parse_email(raw_mail("From: a@example.com", "Subject: uu", body=body))
    (attachment,) = message.attachments
    assert attachment.filename == "hello.txt"
    assert attachment.data == b"hello\n"
    assert "begin 644" not in message.text
    assert "Bye" in message.text


# HTML --------------------------------------------------------------------------------


def test_html_is_sanitized() -> None:
    dirty = '<p onclick="x()">Hi<script>alert(1)</script><a href="javascript:x()">bad</a></p>'
    clean = sanitize_html(dirty)
    assert "script" not in clean and "onclick" not in clean and "javascript" not in clean
    assert "Hi" in clean


def test_html_to_text_keeps_paragraphs_breaks_and_links() -> None:
    html = "<style>p{}</style><p>One<br>Two</p><p>See <a href='https://x.test/a'>docs</a></p>"
    assert html_to_text(html) == "One\nTwo\n\nSee docs (https://x.test/a)"


def test_html_only_mail_drops_gmail_quote_from_reply_text() -> None:
    html = (
        '<div dir="ltr">New answer</div><div class="gmail_quote"><div class="gmail_attr">'
        "On Mon, Jan 1, 2024 Agent wrote:</div><blockquote>Old text</blockquote></div>"
    )
    raw = raw_mail(
        "From: a@example.com", "Subject: x", "Content-Type: text/html; charset=utf-8", body=html
    )
    message = parse_email(raw)
    assert message.reply_text == "New answer"
    assert "Old text" in message.text


# Quoted replies ------------------------------------------------------------------------

REPLY_CASES = {
    "gmail_english": "Thanks!\n\nOn Mon, Jan 1, 2024 at 10:00 AM Agent <a@x.com> wrote:\n> Old",
    "gmail_wrapped": (
        "Thanks!\n\nOn Mon, Jan 1, 2024 at 10:00 AM Agent Name <\na@x.com> wrote:\n\n> Old"
    ),
    "gmail_german": "Thanks!\n\nAm Mo., 1. Jan. 2024 um 10:00 Uhr schrieb Agent <a@x.com>:\n> Old",
    "gmail_greek": "Thanks!\n\nΣτις Δευ 1 Ιαν 2024 στις 10:00, ο/η Agent <a@x.com> έγραψε:\n> Old",
    "gmail_hungarian": (
        "Thanks!\n\nAgent <a@x.com> ezt írta (időpont: 2024. jan. 1., H 10:00):\n> Old"
    ),
    "gmail_arabic": "Thanks!\n\nفي الاثنين، 1 يناير 2024 في 10:00 ص، كتب Agent <a@x.com>:\n> Old",
    "apple_mail": "Thanks!\n\nOn 1 Jan 2024, at 10:00, Agent <a@x.com> wrote:\n\n> Old",
    "thunderbird": "Thanks!\n\nOn 1/1/24 10:00 AM, Agent wrote:\n> Old",
    "yahoo": (
        "Thanks!\n\nOn Monday, January 1, 2024, 10:00:00 AM GMT+1, Agent <a@x.com> wrote:\n\nOld"
    ),
    "outlook_original_message": "Thanks!\n\n-----Original Message-----\nFrom: Agent\nOld",
    "outlook_english_headers": (
        "Thanks!\n\nFrom: Agent <a@x.com>\nSent: Monday, January 1, 2024 10:00 AM\n"
        "To: Me <me@x.com>\nSubject: RE: Help\n\nOld"
    ),
    "outlook_bold_headers": (
        "Thanks!\n\n*From:* Agent <a@x.com>\n*Sent:* Monday, January 1, 2024\n*To:* Me\n\nOld"
    ),
    "outlook_underscore_rule": (
        "Thanks!\n\n________________________________\nFrom: Agent <a@x.com>\n"
        "Sent: Monday, January 1, 2024 10:00 AM\nTo: Me\nSubject: Help\n\nOld"
    ),
    "outlook_german": (
        "Thanks!\n\nVon: Agent <a@x.com>\nGesendet: Montag, 1. Januar 2024 10:00\n"
        "An: Ich\nBetreff: Hilfe\n\nOld"
    ),
    "outlook_greek": (
        "Thanks!\n\nΑπό: Agent <a@x.com>\nΣτάλθηκε: Δευτέρα, 1 Ιανουαρίου 2024 10:00 πμ\n"
        "Προς: Εγώ\nΘέμα: Βοήθεια\n\nOld"
    ),
    "outlook_hungarian": (
        "Thanks!\n\nFeladó: Agent <a@x.com>\nElküldve: 2024. január 1., hétfő 10:00\n"
        "Címzett: Én\nTárgy: Segítség\n\nOld"
    ),
    "outlook_arabic": (
        "Thanks!\n\nمن: Agent <a@x.com>\nتم الإرسال: الاثنين، 1 يناير 2024 10:00 ص\n"
        "إلى: أنا\nالموضوع: مساعدة\n\nOld"
    ),
    "greek_original_message": "Thanks!\n\n-----Αρχικό μήνυμα-----\nΑπό: Agent\nOld",
    "hungarian_original_message": "Thanks!\n\n-----Eredeti üzenet-----\nFeladó: Agent\nOld",
    "plain_quote_lines": "Thanks!\n\n> Old\n> More old",
    "signature": "Thanks!\n-- \nJane Doe\nACME Ltd.",
    "sent_from_iphone": "Thanks!\n\nSent from my iPhone",
    "outlook_for_android": "Thanks!\n\nGet Outlook for Android",
    "sent_from_outlook_for_android": "Thanks!\n\nSent from Outlook for Android",
    "german_iphone": "Thanks!\n\nVon meinem iPhone gesendet",
    "greek_iphone": "Thanks!\n\nΣτάλθηκε από το iPhone μου",
    "hungarian_iphone": "Thanks!\n\nAz iPhone-omról küldve",
}


@pytest.mark.parametrize("text", REPLY_CASES.values(), ids=REPLY_CASES.keys())
def test_quoted_history_and_signature_are_split_from_the_reply(text: str) -> None:
    new, rest = split_reply(text)
    assert new == "Thanks!"
    assert rest


def test_bottom_posted_reply_keeps_the_text_below_the_quote() -> None:
    new, rest = split_reply("On Mon, Jan 1, 2024 Agent <a@x.com> wrote:\n> Old\n\nMy answer")
    assert new == "My answer"
    assert "> Old" in rest


def test_forwarded_message_is_not_treated_as_history() -> None:
    text = "FYI\n\n---------- Forwarded message ---------\nFrom: Shop <s@x.com>\nBody"
    assert split_reply(text)[0] == text


def test_sentence_mentioning_wrote_is_not_a_quote_header() -> None:
    text = "My colleague wrote the report yesterday.\nCan you check it?"
    assert split_reply(text) == (text, "")


# Auto-replies ------------------------------------------------------------------------------

AUTO_REPLY_HEADERS = [
    "Auto-Submitted: auto-replied",
    "Auto-Submitted: auto-generated",
    "X-Autoreply: yes",
    "X-Autorespond: yes",
    "X-Autogenerated: Reply",
    "X-Auto-Response-Suppress: All",
    "Precedence: bulk",
    "Precedence: junk",
    "Precedence: list",
    "Precedence: auto_reply",
    "List-Id: <news.example.com>",
    "List-Unsubscribe: <mailto:unsub@example.com>",
    "X-Loop: help@example.com",
    "X-Rapport-Loop: 1",
]


@pytest.mark.parametrize("header", AUTO_REPLY_HEADERS)
def test_auto_reply_header_is_detected(header: str) -> None:
    raw = basic(header)
    assert is_auto_reply(as_message(raw))
    assert parse_email(raw).is_auto_reply


def test_auto_submitted_no_is_a_human() -> None:
    assert not parse_email(basic("Auto-Submitted: no")).is_auto_reply


def test_plain_mail_is_not_an_auto_reply() -> None:
    assert not parse_email(basic()).is_auto_reply


OUT_OF_OFFICE_SUBJECTS = [
    "Out of Office: Help",
    "Automatic reply: Help",
    "Αυτόματη απάντηση: Βοήθεια",
    "Εκτός γραφείου",
    "Házon kívül",
    "Automatikus válasz: Segítség",
    "رد تلقائي: مساعدة",
    "خارج المكتب",
    "Abwesenheitsnotiz",
]


def _with_subject(subject: str) -> bytes:
    encoded = "=?UTF-8?B?" + base64.b64encode(subject.encode()).decode() + "?="
    return basic().replace(b"Subject: Help", f"Subject: {encoded}".encode())


@pytest.mark.parametrize("subject", OUT_OF_OFFICE_SUBJECTS)
def test_out_of_office_subject_is_an_auto_reply(subject: str) -> None:
    assert parse_email(_with_subject(subject)).is_auto_reply


def test_question_about_auto_replies_is_not_an_auto_reply() -> None:
    assert not parse_email(_with_subject("How do I set an out of office reply?")).is_auto_reply


# Bounces -----------------------------------------------------------------------------------

DSN = """From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: support@rapport.test
Subject: Undelivered Mail Returned to Sender
Date: Tue, 02 Jan 2024 09:00:00 +0000
Message-ID: <dsn1@mx.example.net>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="DSN"

--DSN
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--DSN
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; gone@customer.example
Original-Recipient: rfc822;gone@customer.example
Action: {action}
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <gone@customer.example>: Recipient address
    rejected: User unknown

--DSN
Content-Type: {original_type}

From: Support <support@rapport.test>
To: gone@customer.example
Subject: Your ticket
Message-ID: <rapport.tok123.1704185000@rapport.test>

{original_body}
--DSN--
"""


def dsn(*, action: str = "failed", original_type: str = "message/rfc822") -> bytes:
    body = "" if original_type == "text/rfc822-headers" else "Hello again\n"
    text = DSN.format(action=action, original_type=original_type, original_body=body)
    return text.replace("\n", "\r\n").encode()


def test_dsn_bounce_names_original_message_and_reason() -> None:
    message = parse_email(dsn())
    assert message.is_bounce
    assert message.is_auto_reply
    assert message.bounced_message_id == "rapport.tok123.1704185000@rapport.test"
    assert message.bounce_reason == (
        "550 5.1.1 <gone@customer.example>: Recipient address rejected: User unknown"
    )
    assert "forwarded-message.eml" in [a.filename for a in message.attachments]


def test_dsn_with_only_original_headers_still_names_the_original_message() -> None:
    is_bounce, original, _ = detect_bounce(as_message(dsn(original_type="text/rfc822-headers")))
    assert is_bounce
    assert original == "rapport.tok123.1704185000@rapport.test"


def test_delay_warning_is_not_a_bounce() -> None:
    assert detect_bounce(as_message(dsn(action="delayed"))) == (False, None, None)


def test_x_failed_recipients_marks_a_bounce() -> None:
    assert parse_email(basic("X-Failed-Recipients: gone@customer.example")).is_bounce


def test_null_return_path_with_failure_subject_marks_a_bounce() -> None:
    raw = basic("Return-Path: <>").replace(b"Subject: Help", b"Subject: Undeliverable: Help")
    assert parse_email(raw).is_bounce


def test_unexpected_parser_failure_still_yields_a_raw_text_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(raw: bytes, limit: int) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("channels.email.parse._parse", explode)
    raw = basic(body="still readable")
    message = parse_email(raw)
    assert "still readable" in message.text
    assert message.metadata == {"parse_error": True}
    assert message.external_id == parse_email(raw).external_id


def test_ordinary_mail_is_not_a_bounce() -> None:
    message = parse_email(basic())
    assert not message.is_bounce
    assert message.bounced_message_id is None


# Robustness ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe",
        b"no headers at all",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n",
        b"From: <<<>>>\r\nTo: ,,,@@@\r\nDate: 99 Foo 99999 99:99\r\n\r\n",
        b'Content-Type: text/plain; charset="\x00bad"\r\n\r\nhi',
        b"Content-Type: text/plain; charset=unicode_escape\r\n\r\n\\u0041\\x",
        b"Subject: =?utf-8?B?####?= =?x?Q?=ZZ?=\r\n\r\n",
    ],
)
def test_malformed_input_never_raises(raw: bytes) -> None:
    message = parse_email(raw)
    assert message.channel == "email"
    assert message.external_id


def test_a_nul_byte_in_a_plain_ascii_subject_is_dropped() -> None:
    # PostgreSQL refuses NUL in text; a mangled header must not make the mail unstorable.
    raw = b"From: a@example.test\r\nSubject: Order\x00 42\r\n\r\nHello\r\n"
    assert parse_email(raw).subject == "Order 42"
