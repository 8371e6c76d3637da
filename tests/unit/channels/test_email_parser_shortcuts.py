"""The email parser's speed-ups must give exactly what the stdlib's long way gives."""

from __future__ import annotations

import re
from email import policy
from email.headerregistry import HeaderRegistry
from email.message import Message
from email.parser import BytesParser
from pathlib import Path

import nh3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.email import headers, html, mime, quotes

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpora" / "email" / "chatwoot"
CORPUS_FILES = sorted(CORPUS.glob("*.eml")) if CORPUS.is_dir() else []

PROPERTIES = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def corpus_mails() -> list[bytes]:
    if not CORPUS_FILES:
        pytest.skip("corpus not available")
    return [path.read_bytes() for path in CORPUS_FILES]


def shape(msg: Message) -> list[object]:
    """Everything the parser decided about a message tree, part by part."""
    return [
        (
            part.get_content_type(),
            str(part.get("content-type")),
            part.get_payload() if not part.is_multipart() else None,
            part.preamble,
            part.epilogue,
            [type(defect).__name__ for defect in part.defects],
        )
        for part in msg.walk()
    ]


def multipart(boundary: str, *, end: str = "--\r\n", newline: str = "\r\n") -> bytes:
    lines = [
        "From: a@example.test",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        "",
        "preamble",
        f"--{boundary}",
        "Content-Type: text/plain",
        "",
        "one",
        f"--{boundary} \t",
        "",
        "two",
        f"--{boundary}{end}epilogue",
    ]
    return newline.join(lines).encode("utf-8", "surrogateescape")


@pytest.mark.parametrize(
    "raw",
    [
        multipart("simple"),
        multipart("a.b+c*d?e(f)g[h]i|j^k$l\\m"),
        multipart("===============0207923382063608296=="),
        multipart("x", newline="\n"),
        multipart("x", newline="\r"),
        multipart("x", end="--"),
        multipart("x", end="-- trailing junk\r\n"),
        multipart("x", end="\r\n"),
        multipart("x", end="--  \t\r\n"),
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\nno boundary at all\r\n",
        b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nno boundary parameter\r\n",
        b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n--o\r\n'
        b'Content-Type: multipart/alternative; boundary="i"\r\n\r\n--i\r\n\r\ninner\r\n'
        b"--o--\r\nafter the outer end\r\n",
    ],
)
def test_boundary_matching_parses_edge_cases_like_the_stdlib(raw: bytes) -> None:
    expected = BytesParser(policy=policy.default).parsebytes(raw)
    assert shape(mime.parse_bytes(raw)) == shape(expected)


def test_boundary_matching_parses_the_corpus_like_the_stdlib() -> None:
    for raw in corpus_mails():
        expected = BytesParser(policy=policy.default).parsebytes(raw)
        assert shape(mime.parse_bytes(raw)) == shape(expected)


LINE_PIECES = st.sampled_from(["--", "-", " ", "\t", "\r\n", "\r", "\n", "x", "=", "\\"])


@PROPERTIES
@given(
    boundary=st.text(min_size=1, max_size=12),
    tail=st.lists(LINE_PIECES, max_size=6).map("".join),
    prefix_cut=st.integers(min_value=0, max_value=3),
)
def test_boundary_pattern_matches_as_the_compiled_regex_does(
    boundary: str, tail: str, prefix_cut: int
) -> None:
    separator = "--" + boundary
    # Built exactly as email.feedparser builds it.
    pattern = (
        "(?P<sep>" + re.escape(separator) + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
    )
    line = separator[: len(separator) - prefix_cut] + tail
    fast = mime._compile(pattern)
    assert isinstance(fast, mime._BoundaryPattern)
    expected = re.compile(pattern).match(line)
    found = fast.match(line)
    assert bool(found) == bool(expected)
    if found and expected:
        for group in ("end", "ws", "linesep"):
            assert found.group(group) == expected.group(group)


CONTENT_TYPES = st.one_of(
    st.from_regex(mime._PLAIN_CONTENT_TYPE, fullmatch=True),
    st.sampled_from(
        [
            "text/plain",
            'multipart/alternative;\tboundary="===============0207923382063608296=="',
            "text/plain; charset=utf-8; charset=latin-1",
            "text/plain; Charset=utf-8; charset=latin-1",
            'text/plain; name="=?utf-8?B?w6k=?="',
            "text/plain; name*=utf-8''%C3%A9",
            'text/plain; name=""',
            "text/plain;",
            "text/plain ; charset=utf-8",
            "text/plain; charset=utf-8 (comment)",
            'multipart/mixed; boundary="unterminated',
            "nonsense",
        ]
    ),
)


@PROPERTIES
@given(CONTENT_TYPES)
def test_lazy_content_type_header_equals_the_stdlib_header(value: str) -> None:
    lazy = mime.POLICY.header_factory._build("Content-Type", value)
    stdlib = HeaderRegistry()("Content-Type", value)
    assert str(lazy) == str(stdlib)
    assert dict(lazy.params) == dict(stdlib.params)
    assert (lazy.content_type, lazy.maintype, lazy.subtype) == (
        stdlib.content_type,
        stdlib.maintype,
        stdlib.subtype,
    )
    assert [repr(defect) for defect in lazy.defects] == [repr(d) for d in stdlib.defects]
    assert lazy.fold(policy=mime.POLICY) == stdlib.fold(policy=mime.POLICY)


def test_cached_parameters_equal_get_param() -> None:
    for raw in corpus_mails():
        for part in mime.iter_all(mime.parse_bytes(raw), into_messages=True):
            for name, header in [
                ("charset", "content-type"),
                ("name", "content-type"),
                ("boundary", "content-type"),
                ("filename", "content-disposition"),
            ]:
                assert mime._param(part, name, header) == part.get_param(name, header=header)
            assert mime._get_filename(part) == part.get_filename()


def test_parse_addresses_hands_out_a_fresh_list_each_time() -> None:
    value = "Ann <ann@example.test>, bob@example.test"
    first = headers.parse_addresses(value)
    first.append(("Mallory", "mallory@example.test"))
    assert headers.parse_addresses(value) == [("Ann", "ann@example.test"), ("", "bob@example.test")]


def _attribution_without_precheck(lines: list[str], index: int) -> bool:
    window = ""
    for offset in range(3):
        if index + offset >= len(lines) or not lines[index + offset].strip():
            return False
        window = f"{window} {lines[index + offset].strip()}".strip()
        if quotes._ATTRIBUTION.match(window):
            return True
        if offset == 0 and quotes._ATTRIBUTION_LOOSE.match(window) and len(window) < 200:
            return True
    return False


ATTRIBUTION_PIECES = st.sampled_from(
    [
        "On",
        "W",
        "dniu",
        "Ο",
        "χρήστης",
        "\u200fفي",
        "12.",
        "Mon",
        "Ann",
        "<a@b.test>",
        "@",
        "wrote",
        "WROTE",
        "a",
        "écrit",
        "schrieb",
        "كتب",
        ":",
        " ",
        "\t",
        "\xa0",
        ",",
        "x",
    ]
)
ATTRIBUTION_LINES = st.lists(
    st.lists(ATTRIBUTION_PIECES, max_size=8).map(" ".join), min_size=1, max_size=4
)


@PROPERTIES
@given(ATTRIBUTION_LINES)
def test_attribution_precheck_never_changes_the_answer(lines: list[str]) -> None:
    for index in range(len(lines)):
        assert quotes._is_attribution(lines, index) is _attribution_without_precheck(lines, index)


@pytest.mark.parametrize(
    "lines",
    [
        ["W", "dniu 6 maja 2024 Ann pisze", "wrote:"],
        ["Ο", "χρήστης Ann έγραψε:"],
        ["Ann <ann@example.test>", "wrote:"],
        ["On Mon, 6 May 2024,", "Ann", "wrote:"],
        ["my order has not arrived", "wrote:"],
    ],
)
def test_attribution_precheck_keeps_wrapped_attributions(lines: list[str]) -> None:
    assert quotes._is_attribution(lines, 0) is _attribution_without_precheck(lines, 0)


def test_reused_sanitizer_cleans_like_nh3_clean() -> None:
    samples = [
        '<p style="color: red; position: fixed">Hi <img src="cid:logo@x"></p>',
        "<script>alert(1)</script><a href='javascript:x' onclick='y'>link</a>",
        "<table bgcolor=#fff><tr><td align=left>cell</td></tr></table><!-- note -->",
    ]
    for raw in corpus_mails():
        msg = mime.parse_bytes(raw)
        samples += [
            mime.payload_bytes(part).decode("utf-8", "replace")
            for part in mime.iter_leaves(msg)
            if mime.content_type(part) == "text/html"
        ]
    for sample in samples:
        expected = nh3.clean(
            sample,
            attributes=html._ATTRIBUTES,
            url_schemes=set(html._URL_SCHEMES),
            filter_style_properties=set(html._STYLE_PROPERTIES),
        )
        assert html.sanitize_html(sample) == expected
