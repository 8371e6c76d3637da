"""Walk MIME trees and read parts without letting malformed ones raise."""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from contextlib import suppress
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import Message
from functools import lru_cache

from channels.email.headers import decode_words, raw_header

# Bounds against hostile nesting and part bombs; real mail stays far below them.
MAX_DEPTH = 40
MAX_PARTS = 2000

# Header values longer than this are parsed on every access instead of being cached.
_CACHED_HEADER_CHARS = 4096


class _ReusingHeaderRegistry(HeaderRegistry):
    """``policy.default``'s header factory without its two per-access costs.

    The stdlib builds a new header class with ``type()`` and parses the value
    again on every ``msg.get()``; ``get_content_type`` alone is called several
    times per part by the parser and by us. Header objects are immutable
    values, so one parse per distinct (name, value) gives the same results.
    """

    def __init__(self) -> None:
        super().__init__()
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
        children = _children(part) if depth < MAX_DEPTH and not is_message_part(part) else []
        if children:
            stack.extend((child, depth + 1) for child in reversed(children))
        elif not content_type(part).startswith("multipart/"):
            yield part


def iter_all(msg: Message, *, into_messages: bool = False) -> Iterator[Message]:
    """Yield every part, containers included; enter embedded messages only if asked."""
    count = 0
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack and count < MAX_PARTS:
        part, depth = stack.pop()
        count += 1
        yield part
        if depth >= MAX_DEPTH or (is_message_part(part) and not into_messages and depth > 0):
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
        value = part.get_param("charset")
    except Exception:
        return None
    if isinstance(value, tuple):  # RFC 2231 form: (charset, language, value)
        value = value[2]
    return str(value) if value else None


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
        name = part.get_filename()
    except Exception:
        name = None
    if not name:
        try:
            name = part.get_param("name")
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
