"""Walk MIME trees and read parts without letting malformed ones raise."""

from __future__ import annotations

import binascii
import re
import types
from collections.abc import Iterator
from contextlib import suppress
from email import feedparser, policy
from email.headerregistry import BaseHeader, ContentTypeHeader, HeaderRegistry
from email.message import Message
from email.utils import collapse_rfc2231_value
from functools import lru_cache
from typing import Any

from channels.email.headers import decode_words, raw_header

# Bounds against hostile nesting and part bombs; real mail stays far below them.
MAX_DEPTH = 40
MAX_PARTS = 2000

# Header values longer than this are parsed on every access instead of being cached.
_CACHED_HEADER_CHARS = 4096


_TTEXT = r"[A-Za-z0-9!#$%&'*+.^_`{|}~-]+"
# "type/subtype; name=value; name=\"value\"": the Content-Type of nearly every part.
_PLAIN_CONTENT_TYPE = re.compile(
    rf"({_TTEXT}/{_TTEXT})((?:;[ \t]*[A-Za-z0-9-]+=(?:[A-Za-z0-9._+-]+|\"[A-Za-z0-9'()+_,./:=-]+\"))*)"
)
_PLAIN_PARAMETER = re.compile(r";[ \t]*([A-Za-z0-9-]+)=\"?([^\";]+)")


def _plain_content_type_text(value: str) -> str | None:
    """Return the text the stdlib gives a plain Content-Type value, or None if not plain.

    The stdlib rebuilds the text from its parse: "type/subtype; name="value"; …".
    """
    match = _PLAIN_CONTENT_TYPE.fullmatch(value)
    if match is None:
        return None
    params = _PLAIN_PARAMETER.findall(match.group(2))
    if len({name.lower() for name, _ in params}) != len(params):
        return None  # duplicates: leave the stdlib's recovery to the stdlib
    if not params:
        return match.group(1)
    return match.group(1) + "; " + "; ".join(f'{name}="{text}"' for name, text in params)


class _LazyContentTypeHeader(ContentTypeHeader):
    """A Content-Type header that parses a plain value only when its parts are used.

    The stdlib's parse of a Content-Type costs about 100 µs, and every multipart
    has a unique boundary, so the header cache below never hits for it. The
    parser and we only read the header's text; for plain values that text is
    built directly, and the parse tree, params, defects and maintype are made by
    the stdlib on first use. test_email_parser_shortcuts.py checks that both
    give the same header.
    """

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        text = _plain_content_type_text(value)
        if text is None:
            super().parse(value, kwds)
        else:
            kwds["decoded"] = text
            kwds["source"] = value

    def init(self, name: str, **kwds: Any) -> None:
        if "source" in kwds:
            self._name = name
            self._source = kwds["source"]
        else:
            super().init(name, **kwds)

    def __getattr__(self, attribute: str) -> Any:
        # Runs only for attributes that are not set: before the full parse, the
        # private ones that the stdlib's init sets. Threads racing here parse twice.
        if attribute[:1] != "_" or attribute[:2] == "__" or "_source" not in vars(self):
            raise AttributeError(attribute)
        kwds: dict[str, Any] = {"defects": []}
        super().parse(self._source, kwds)
        del kwds["decoded"]
        super().init(self._name, **kwds)
        return object.__getattribute__(self, attribute)


class _ReusingHeaderRegistry(HeaderRegistry):
    """``policy.default``'s header factory without its two per-access costs.

    The stdlib builds a new header class with ``type()`` and parses the value
    again on every ``msg.get()``; ``get_content_type`` alone is called several
    times per part by the parser and by us. Header objects are immutable
    values, so one parse per distinct (name, value) gives the same results.
    """

    def __init__(self) -> None:
        super().__init__()
        # typeshed types the registry as BaseHeader classes; the stdlib registers mixins.
        self.map_to_type("content-type", _LazyContentTypeHeader)  # type: ignore[arg-type]
        self._classes: dict[str, type[BaseHeader]] = {}
        self._parse = lru_cache(maxsize=2048)(self._build)

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls

    def __call__(self, name: str, value: str) -> BaseHeader:
        if type(value) is str and len(value) <= _CACHED_HEADER_CHARS:
            return self._parse(name, value)
        return self._build(name, value)

    def _build(self, name: str, value: str) -> BaseHeader:
        return self[name](name, value)


#: ``policy.default`` with a header factory that reuses parsed headers.
POLICY = policy.default.clone(header_factory=_ReusingHeaderRegistry())


# FeedParser compiles "(?P<sep>" + re.escape("--" + boundary) + ")" + this tail.
_BOUNDARY_TAIL = re.compile(r"(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")
_BOUNDARY_PREFIX = "(?P<sep>"
_BOUNDARY_SUFFIX = ")" + _BOUNDARY_TAIL.pattern
_ESCAPED_CHAR = re.compile(r"\\(.)", re.DOTALL)


class _BoundaryPattern:
    """Match a boundary line as FeedParser's per-boundary regex does, without compiling one.

    A literal prefix test, then one shared precompiled pattern for the rest of the
    line. The match has the same ``end``, ``ws`` and ``linesep`` groups (all that
    FeedParser reads) but no ``sep`` group, and ``group(0)`` omits the separator.
    """

    def __init__(self, separator: str) -> None:
        self.separator = separator

    def match(self, line: str) -> re.Match[str] | None:
        if not line.startswith(self.separator):
            return None
        return _BOUNDARY_TAIL.match(line, len(self.separator))


def _compile(pattern: str, flags: int = 0) -> re.Pattern[str] | _BoundaryPattern:
    if not flags and pattern.startswith(_BOUNDARY_PREFIX) and pattern.endswith(_BOUNDARY_SUFFIX):
        escaped = pattern[len(_BOUNDARY_PREFIX) : -len(_BOUNDARY_SUFFIX)]
        return _BoundaryPattern(_ESCAPED_CHAR.sub(r"\1", escaped))  # undo re.escape
    return re.compile(pattern, flags)


class _FeedParser(feedparser.FeedParser):
    """The stdlib FeedParser, minus one regex compile per multipart boundary.

    ``_parsegen`` compiles a regex for every multipart boundary it meets.
    Boundaries are unique per mail, so the re cache never hits, and compiling
    cost more than the rest of the parse. This class runs the stdlib's own
    ``_parsegen`` code with globals in which ``re.compile`` returns a
    ``_BoundaryPattern`` for that one pattern; the ``re`` module and every other
    parser stay untouched. Should a new Python build the pattern differently,
    ``_compile`` falls back to ``re.compile`` and only the speed-up is lost.
    """

    _parsegen = types.FunctionType(
        feedparser.FeedParser._parsegen.__code__,  # type: ignore[attr-defined]  # private in typeshed
        {**vars(feedparser), "re": types.SimpleNamespace(**{**vars(re), "compile": _compile})},
        "_parsegen",
    )


def parse_bytes(raw: bytes) -> Message:
    """Parse raw mail bytes exactly as ``BytesParser(policy=POLICY).parsebytes`` does."""
    parser = _FeedParser(policy=POLICY)
    text = raw.decode("ASCII", errors="surrogateescape")
    # Fed in the chunks Parser.parse reads, so line splitting is the same too.
    for start in range(0, len(text), 8192):
        parser.feed(text[start : start + 8192])
    return parser.close()


_UUENCODED = re.compile(
    r"^begin [0-7]{3,4} ([^\r\n]+)\r?\n(.*?)^end[ \t]*$\r?\n?", re.MULTILINE | re.DOTALL
)


def content_type(part: Message, default: str = "text/plain") -> str:
    """Return the part's lower-case ``maintype/subtype``, or ``default`` when unreadable."""
    try:
        value = part.get_content_type()
    except Exception:  # malformed Content-Type headers are common
        return default
    if not isinstance(value, str) or "/" not in value:
        return default
    return value.lower()


def is_message_part(part: Message) -> bool:
    """Tell whether the part is an embedded message (message/rfc822 and friends)."""
    return content_type(part).startswith("message/")


def iter_leaves(msg: Message) -> Iterator[Message]:
    """Yield leaf parts in order; embedded messages are yielded whole, not entered."""
    count = 0
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack and count < MAX_PARTS:
        part, depth = stack.pop()
        count += 1
        kind = content_type(part)
        children = _children(part) if depth < MAX_DEPTH and not kind.startswith("message/") else []
        if children:
            stack.extend((child, depth + 1) for child in reversed(children))
        elif not kind.startswith("multipart/"):
            yield part


def iter_all(msg: Message, *, into_messages: bool = False) -> Iterator[Message]:
    """Yield every part, containers included; enter embedded messages only if asked."""
    count = 0
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack and count < MAX_PARTS:
        part, depth = stack.pop()
        count += 1
        yield part
        if depth >= MAX_DEPTH or (depth > 0 and not into_messages and is_message_part(part)):
            continue
        stack.extend((child, depth + 1) for child in reversed(_children(part)))


def _children(part: Message) -> list[Message]:
    try:
        if not part.is_multipart():
            return []
        payload = part.get_payload()
    except Exception:
        return []
    if isinstance(payload, list):
        return [child for child in payload if isinstance(child, Message)]
    return []


def payload_bytes(part: Message) -> bytes:
    """Return the part's decoded body bytes; embedded messages are re-serialised."""
    if is_message_part(part):
        return _message_bytes(part)
    try:
        data = part.get_payload(decode=True)
    except Exception:  # broken base64/quoted-printable
        data = None
    if isinstance(data, bytes):
        return data
    try:
        raw = part.get_payload()
    except Exception:
        return b""
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _message_bytes(part: Message) -> bytes:
    children = _children(part)
    if not children:
        try:
            raw = part.get_payload()
        except Exception:
            return b""
        return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
    return b"\n".join(_serialise(child) for child in children)


def _serialise(msg: Message) -> bytes:
    with suppress(Exception):  # fall back to the lossy string form below
        return msg.as_bytes()
    with suppress(Exception):
        return msg.as_string().encode("utf-8", "replace")
    return b""  # a message even as_string cannot render is dropped


def charset(part: Message) -> str | None:
    """Return the declared charset parameter, if any."""
    try:
        value = _param(part, "charset")
    except Exception:
        return None
    if isinstance(value, tuple):  # RFC 2231 form: (charset, language, value)
        value = value[2]
    return str(value) if value else None


_Param = str | tuple[str | None, str | None, str]


def _param(part: Message, name: str, header: str = "content-type") -> _Param | None:
    """Return ``part.get_param(name, header=header)``, parsing each header value once.

    ``Message.get_param`` parses the whole header again on every call, and the
    charset and name parameters are read several times per part.
    """
    value = part.get(header)
    if value is None:
        return None
    if len(value) > _CACHED_HEADER_CHARS:
        return _uncached_param(str(value), name, header)
    return _cached_param(str(value), name, header)


def _uncached_param(value: str, name: str, header: str) -> _Param | None:
    # The result depends only on the header's text; a compat32 Message hands the
    # stored text back to get_param as it is.
    holder = Message()
    holder[header] = value
    result: _Param | None = holder.get_param(name, header=header)
    return result


_cached_param = lru_cache(maxsize=2048)(_uncached_param)


def _get_filename(part: Message) -> str | None:
    """Return ``part.get_filename()``, reading the parameters through ``_param``."""
    value = _param(part, "filename", "content-disposition")
    if value is None:  # get_param never returns None for a parameter that is present
        value = _param(part, "name")
    return None if value is None else collapse_rfc2231_value(value).strip()


def disposition(part: Message) -> str | None:
    """Return ``inline``, ``attachment`` (or another token), or None when absent."""
    value = raw_header(part, "Content-Disposition")
    if not value:
        return None
    token = value.split(";", 1)[0].strip().lower()
    return token or None


def filename(part: Message) -> str | None:
    """Return the part's file name (RFC 2231 and RFC 2047 decoded), or None."""
    name: object = None
    try:
        name = _get_filename(part)
    except Exception:
        name = None
    if not name:
        try:
            name = _param(part, "name")
        except Exception:
            name = None
        if isinstance(name, tuple):
            name = name[2]
    if not isinstance(name, str) or not name.strip():
        return None
    return decode_words(name).strip() or None


def content_id(part: Message) -> str | None:
    """Return the Content-ID without angle brackets."""
    value = raw_header(part, "Content-ID")
    if not value:
        return None
    return value.strip().strip("<>").strip() or None


def extract_uuencoded(text: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Pull ``begin 644 name`` … ``end`` blocks out of text; returns (text, files)."""
    files: list[tuple[str, bytes]] = []

    def _take(match: re.Match[str]) -> str:
        files.append((match.group(1).strip(), _decode_uu_lines(match.group(2))))
        return ""

    if "begin " not in text:
        return text, files
    return _UUENCODED.sub(_take, text), files


def _decode_uu_lines(block: str) -> bytes:
    out = bytearray()
    for line in block.splitlines():
        if not line or line in ("`", " "):
            continue
        try:
            out += binascii.a2b_uu(line.encode("ascii", "replace"))
        except binascii.Error:
            # Some encoders pad lines wrongly; decode only the declared length.
            length = (((ord(line[0]) - 32) & 63) * 4 + 5) // 3
            try:
                out += binascii.a2b_uu(line[:length].encode("ascii", "replace"))
            except binascii.Error:
                continue
    return bytes(out)
