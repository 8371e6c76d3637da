"""Chatwoot's email fixtures and spec expectations, run against parse_email.

The corpus lives beside the repository (``../shared/corpora``) and is read as
data; see its README for the meaning of each MANIFEST field and op. Fields that
need a database (tickets, contacts, dedupe) are skipped here and belong to the
ingest integration tests. Where Rapport deliberately differs from Chatwoot, the
entry is checked against our generic requirement instead, with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from channels.base import InboundMessage
from channels.email import parse_email

CORPORA = Path(__file__).resolve().parents[3].parent / "shared" / "corpora"
CHATWOOT = CORPORA / "email" / "chatwoot"
MANIFEST = CHATWOOT / "MANIFEST.json"

NEEDS_INGEST = "needs ingest; covered by integration tests"
INGEST_FIELDS = frozenset(
    {
        "creates_ticket",
        "appended_to_existing_thread",
        "matched_inbox_address",
        "existing_contact_reused",
        "dedupe_by_message_id",
        "imap_skip_if_message_id_known",
    }
)


def _entries() -> list[Any]:
    if not MANIFEST.is_file():
        return [
            pytest.param(None, marks=pytest.mark.skip(reason=f"corpus not found at {CHATWOOT}"))
        ]
    entries = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return [
        pytest.param(entry, id=f"{index:02d}-{entry['file']}-{entry['field']}-{entry['op']}")
        for index, entry in enumerate(entries)
    ]


def _eml_files() -> list[Any]:
    if not CHATWOOT.is_dir():
        return [
            pytest.param(None, marks=pytest.mark.skip(reason=f"corpus not found at {CHATWOOT}"))
        ]
    return [pytest.param(path, id=path.name) for path in sorted(CHATWOOT.glob("*.eml"))]


_cache: dict[str, InboundMessage] = {}


def _parsed(name: str) -> InboundMessage:
    if name not in _cache:
        _cache[name] = parse_email((CHATWOOT / name).read_bytes())
    return _cache[name]


# How each parser-level field maps onto InboundMessage.
def _field(message: InboundMessage, field: str) -> Any:
    threading = message.threading
    getters: dict[str, Callable[[], Any]] = {
        "subject": lambda: message.subject,
        "sender_email": lambda: message.sender.value,
        "sender_name": lambda: message.sender.display_name,
        "text_full": lambda: message.text,
        "reply_text": lambda: message.reply_text,
        # For an HTML-only mail our reply_text is the HTML's reply part as text.
        "html_reply": lambda: message.reply_text,
        "html_full": lambda: message.html,
        "date": lambda: message.sent_at,
        "content_type": lambda: message.metadata["content_type"],
        "message_id": lambda: threading.message_id,
        "in_reply_to": lambda: threading.in_reply_to[0] if threading.in_reply_to else None,
        "references": lambda: list(threading.references),
        "is_auto_reply": lambda: message.is_auto_reply,
        "no_crash": lambda: True,
        # "Stored" attachments are the ones not shown inside the body.
        "attachments_count": lambda: sum(1 for a in message.attachments if not a.is_inline),
        "attachment_filenames": lambda: [
            a.filename for a in message.attachments if not a.is_inline
        ],
        # The stored message content is the visible reply; empty means "no content".
        "message_content": lambda: message.reply_text or None,
    }
    return getters[field]()


def _apply(op: str, actual: Any, expected: Any) -> None:
    if op == "eq":
        if isinstance(actual, datetime):
            expected = datetime.fromisoformat(expected)
        assert actual == expected
    elif op == "ne":
        assert actual != expected
    elif op == "starts_with":
        assert actual is not None and actual.startswith(expected)
    elif op == "contains":
        assert actual is not None and expected in actual
    elif op == "not_contains":
        assert actual is None or expected not in actual
    elif op == "is_null":
        assert actual is None
    elif op == "all_start_with":
        assert actual and all(item.startswith(expected) for item in actual)
    else:  # pragma: no cover - a new op in the manifest must be handled here
        pytest.fail(f"unknown op {op!r}")


# Deliberate differences from Chatwoot -------------------------------------------
# Each maps (file, field, op, value) to the generic requirement we check instead.


def _cid_references_have_inline_parts(message: InboundMessage) -> None:
    """Chatwoot rewrites cid: to stored URLs at ingest; the parser's half is that
    every cid: survives sanitizing and names an inline attachment to rewrite to."""
    assert message.html is not None
    cids = set(re.findall(r'src="cid:([^"]+)"', message.html))
    assert cids
    inline = {a.content_id for a in message.attachments if a.is_inline}
    assert cids <= inline


def _gmail_placeholders_have_inline_parts(message: InboundMessage) -> None:
    """Chatwoot replaces Gmail's "[image: name]" text placeholders with <img> tags
    pointing at stored files (ingest). The parser's half: each placeholder names an
    inline attachment, so the core can substitute it."""
    names = set(re.findall(r"\[image: ([^\]]+)\]", message.text))
    assert names
    assert names <= {a.filename for a in message.attachments if a.is_inline}


def _attachment_cap_is_not_applied(message: InboundMessage) -> None:
    """Chatwoot keeps only 15 attachments per message. We keep all 30 parts and
    leave any cap to ingest policy, so nothing is silently dropped by the parser."""
    assert len(message.attachments) == 30
    assert all(a.filename and not a.is_inline for a in message.attachments)


def _quote_is_separated(message: InboundMessage) -> None:
    """Chatwoot keeps the quoted "> Any update on this?" and the signature in the
    reply; we separate them (reply_text is the new text only) and keep the full
    text in ``text``."""
    assert message.reply_text == "Yes, I am providing you step how to reproduce this issue"
    assert "> Any update on this?" in message.text
    assert "* Sony Mathew*" in message.text


def _deeply_nested_html_is_kept(message: InboundMessage) -> None:
    """Chatwoot's HTML parser gives up on this Zoho mail's ~250 nested divs and
    stores no HTML. That HTML holds real text, so we keep it (sanitized); the
    message still carries the plain text and no stored attachment."""
    assert message.html is not None and "Media Associate" in message.html
    assert "This is test message." in message.text


def _markdown_reply_matches_loosely(message: InboundMessage) -> None:
    """Chatwoot renders HTML-only replies as Markdown ("[C](url)", "[]" for an
    image). We render links as "text (url)" and drop images, so compare with
    Markdown links rewritten and whitespace collapsed."""
    expected = (
        "Hi,\n\nWe are providing you platform from here you can sell paid posts on your "
        "website.\n\nChatwoot | CS team | [C](https://d33wubrfki0l68.cloudfront.net/"
        "973467c532160fd8b940300a43fa85fa2d060307/dc9a0/static/"
        "brand-73f58cdefae282ae74cebfa74c1d7003.svg)\n\nSkype: live:.cid.something\n\n[]"
    )
    loose = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1 (\2)", expected).replace("[]", "")
    assert message.reply_text is not None
    assert " ".join(loose.split()) in " ".join(message.reply_text.split())


DEVIATIONS: dict[tuple[str, str, str], Callable[[InboundMessage], None]] = {
    ("mail_with_inline_images.eml", "html_full", "not_contains"): (
        _cid_references_have_inline_parts
    ),
    ("cid_inline_images_without_disposition.eml", "html_full", "not_contains"): (
        _cid_references_have_inline_parts
    ),
    ("mail_with_plain_text_and_inline_image.eml", "text_full", "contains"): (
        _gmail_placeholders_have_inline_parts
    ),
    ("mail_with_plain_text_and_inline_image.eml", "text_full", "not_contains"): (
        _gmail_placeholders_have_inline_parts
    ),
    ("multiple_attachments.eml", "attachments_count", "eq"): _attachment_cap_is_not_applied,
    ("mail_with_quote.eml", "reply_text", "eq"): _quote_is_separated,
    ("mail_with_html_part_no_html_content.eml", "html_full", "is_null"): (
        _deeply_nested_html_is_kept
    ),
    ("support_1.eml", "html_reply", "contains"): _markdown_reply_matches_loosely,
}


def _needs_ingest(entry: dict[str, Any]) -> bool:
    if entry["field"] in INGEST_FIELDS:
        return True
    # The content of a message appended to an existing conversation needs that
    # conversation stored first.
    return entry["field"] == "message_content" and "conversation" in entry.get("precondition", "")


@pytest.mark.parametrize("entry", _entries())
def test_chatwoot_manifest_expectation_holds(entry: dict[str, Any]) -> None:
    if _needs_ingest(entry):
        pytest.skip(NEEDS_INGEST)
    message = _parsed(entry["file"])
    deviation = DEVIATIONS.get((entry["file"], entry["field"], entry["op"]))
    if deviation is not None:
        deviation(message)
        return
    _apply(entry["op"], _field(message, entry["field"]), entry["value"])


@pytest.mark.parametrize("path", _eml_files())
def test_every_corpus_mail_parses_without_raising(path: Path) -> None:
    message = parse_email(path.read_bytes())
    assert message.channel == "email"
    assert message.external_id
    assert "@" in message.sender.value
    assert "parse_error" not in message.metadata
    json.dumps(message.metadata)


def test_mail_with_empty_date_header_has_no_sent_at() -> None:
    if not CHATWOOT.is_dir():
        pytest.skip(f"corpus not found at {CHATWOOT}")
    message = _parsed("mail_with_no_date.eml")
    assert message.sent_at is None
    assert message.subject == "test text only mail"


def test_truncated_base64_inline_image_is_kept_as_inline_attachment() -> None:
    if not CHATWOOT.is_dir():
        pytest.skip(f"corpus not found at {CHATWOOT}")
    message = _parsed("cid_inline_images_without_disposition.eml")
    (image,) = message.attachments
    assert image.is_inline
    assert image.content_id == "image001.jpg@test"
    assert image.data.startswith(b"\xff\xd8")  # the JPEG header decodes despite the "..."


def test_gmail_bounce_names_the_failed_message_and_reason() -> None:
    if not CHATWOOT.is_dir():
        pytest.skip(f"corpus not found at {CHATWOOT}")
    message = _parsed("bounced_gmail.eml")
    assert message.is_bounce
    assert message.bounced_message_id == (
        "conversation/93775311-9416-4428-964b-862001f8a8b2/messages/27855337@gmail.com"
    )
    assert message.bounce_reason == "Address not found"


def test_postfix_bounce_without_from_uses_diagnostic_code() -> None:
    if not CHATWOOT.is_dir():
        pytest.skip(f"corpus not found at {CHATWOOT}")
    message = _parsed("bounced_with_no_from.eml")
    assert message.is_bounce
    assert message.sender.value == "unknown@invalid"
    assert message.bounce_reason is not None and "5.7.1" in message.bounce_reason
