"""The parser's shortcuts must give exactly what the long way gives."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from channels.email import mime
from channels.email.html import has_text, html_to_text

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpora" / "email" / "chatwoot"


@pytest.mark.parametrize(
    "html",
    [
        "",
        "<p>Hello</p>",
        "<html><head><title>t</title><style>p {}</style></head><body>&nbsp;</body></html>",
        "<ul><li></li></ul>",
        "<br><hr><div>   </div>",
        "<script>alert(1)</script>",
        "<a href='https://example.test'></a><p>x",
        "<p>unclosed <b>bold",
        "<![if !supportLists]>",
        "<div>\xa0\u2003</div>",
    ],
)
def test_has_text_agrees_with_html_to_text(html: str) -> None:
    assert has_text(html) is bool(html_to_text(html))


def test_reusing_header_policy_reads_parts_as_the_default_policy_does() -> None:
    files = sorted(CORPUS.glob("*.eml")) if CORPUS.is_dir() else []
    if not files:
        pytest.skip("corpus not available")
    for path in files:
        raw = path.read_bytes()
        fast = list(mime.iter_all(BytesParser(policy=mime.POLICY).parsebytes(raw)))
        slow = list(mime.iter_all(BytesParser(policy=policy.default).parsebytes(raw)))
        assert [mime.content_type(p) for p in fast] == [mime.content_type(p) for p in slow]
        assert [mime.filename(p) for p in fast] == [mime.filename(p) for p in slow]
        assert [mime.charset(p) for p in fast] == [mime.charset(p) for p in slow]
        assert [mime.payload_bytes(p) for p in fast] == [mime.payload_bytes(p) for p in slow]
