"""Property tests: no bytes, however broken, make the email parser raise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.base import InboundMessage
from channels.email import parse_email
from channels.email.html import html_to_text, sanitize_html
from channels.email.quotes import split_reply

CHATWOOT = Path(__file__).resolve().parents[3].parent / "shared" / "corpora" / "email" / "chatwoot"
# Small fixtures only, so each example stays fast.
CORPUS = (
    sorted(p for p in CHATWOOT.glob("*.eml") if p.stat().st_size < 50_000)
    if CHATWOOT.is_dir()
    else []
)

# database=None: examples are not saved under the repository.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def assert_well_formed(message: InboundMessage) -> None:
    """Check the invariants the core relies on."""
    assert message.channel == "email"
    assert message.external_id
    assert "@" in message.sender.value
    json.dumps(message.metadata)
    for text in (message.text, message.reply_text or "", message.subject or "", message.html or ""):
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogates
    for attachment in message.attachments:
        assert attachment.filename
        assert attachment.size is not None


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise(raw: bytes) -> None:
    assert_well_formed(parse_email(raw))


HEADER_NAMES = [
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Content-ID",
    "Auto-Submitted",
    "Return-Path",
    "X-Rapport-Ticket",
]
TRICKY_VALUES = [
    "",
    "<>",
    "=?utf-8?B?w6k=?=",
    "=?gb2312?B?xOO6ww==?=",
    "=?x-unknown?Q?=FF=FE?=",
    "=?utf-8?B?####?=",
    '"unterminated <a@b',
    "a@b, , <<c@d>>",
    "text/plain; charset=utf-7",
    "text/html; charset=gb2312",
    "multipart/mixed; boundary=X",
    "multipart/alternative; boundary=",
    "message/rfc822",
    "message/delivery-status",
    "base64",
    "quoted-printable",
    "x-uuencode",
    "attachment; filename*=UTF-8''%E9%FF.txt",
    "inline; filename*0*=bogus'';filename*1=x",
    "Mon, 99 Foo 2024 25:61:61 +9999",
]
header_value = st.one_of(
    st.sampled_from(TRICKY_VALUES),
    st.text(max_size=80).map(lambda s: s.replace("\r", " ").replace("\n", " ")),
)
header_line = st.tuples(st.sampled_from(HEADER_NAMES), header_value).map(
    lambda pair: f"{pair[0]}: {pair[1]}".encode("utf-8", "surrogateescape")
)
body_chunk = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"--X\r\nContent-Type: text/html\r\n\r\n<p>hi<img src=cid:a>",
            b"--X\r\nContent-Type: image/png\r\nContent-ID: <a>\r\n\r\niVBOR===",
            b"--X\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody",
            b"--X--\r\n",
            b"begin 644 f.bin\r\nM86)C\r\nend\r\n",
            b"> quoted\r\nOn Mon wrote:\r\n-- \r\nsig",
        ]
    ),
)


@st.composite
def generated_mime(draw: st.DrawFn) -> bytes:
    headers = draw(st.lists(header_line, max_size=12))
    chunks = draw(st.lists(body_chunk, max_size=8))
    return b"\r\n".join(headers) + b"\r\n\r\n" + b"\r\n".join(chunks)


@FUZZ
@given(generated_mime())
def test_generated_mime_never_raises(raw: bytes) -> None:
    assert_well_formed(parse_email(raw))


@st.composite
def mutated_corpus_mail(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS)).read_bytes())
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        position = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and data:
            data[position] ^= draw(st.integers(min_value=1, max_value=255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=40))
        elif action == "delete":
            del data[position : position + draw(st.integers(min_value=1, max_value=200))]
        else:
            del data[position:]
    return bytes(data)


@pytest.mark.skipif(not CORPUS, reason=f"corpus not found at {CHATWOOT}")
@FUZZ
@given(mutated_corpus_mail())
def test_mutated_corpus_mail_never_raises(raw: bytes) -> None:
    assert_well_formed(parse_email(raw))


@FUZZ
@given(st.text(max_size=2000))
def test_text_helpers_never_raise(text: str) -> None:
    new, rest = split_reply(text)
    assert isinstance(new, str) and isinstance(rest, str)
    assert isinstance(html_to_text(text, drop_quotes=True), str)
    assert isinstance(sanitize_html(text), str)
