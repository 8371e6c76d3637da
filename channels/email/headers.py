"""Read headers tolerantly: raw values, RFC 2047 words, address lists, Message-IDs.

We decode from the raw header text instead of ``policy.default``'s header
objects because those raise or give up on the malformed headers real mail has
(8-bit bytes, encoded words in a wrong charset, unbalanced brackets).
"""

from __future__ import annotations

import base64
import binascii
import re
from email.message import Message
from email.utils import getaddresses
from functools import lru_cache

from channels.email.charsets import decode_text, reencode_surrogates

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_ONLY_SPACE = re.compile(r"^[ \t\r\n]*$")
_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+$")
_BRACKETED_ID = re.compile(r"<\s*([^<>\s]+)\s*>")

# Address headers longer than this are parsed on every call instead of being cached.
_CACHED_ADDRESS_CHARS = 4096


def raw_header(msg: Message, name: str) -> str | None:
    """Return the first raw value of a header, unfolded, without parsing it."""
    wanted = name.lower()
    try:
        items = msg.raw_items() if hasattr(msg, "raw_items") else msg.items()
        for key, value in items:
            if str(key).lower() == wanted:
                return unfold(str(value))
    except Exception:  # a broken header must not sink the message
        return None
    return None


def has_header(msg: Message, *names: str) -> bool:
    """Tell whether any of the headers is present, in one pass over the headers."""
    wanted = {name.lower() for name in names}
    try:
        items = msg.raw_items() if hasattr(msg, "raw_items") else msg.items()
        return any(str(key).lower() in wanted for key, _ in items)
    except Exception:  # a broken header must not sink the message
        return False


def unfold(value: str) -> str:
    """Join a folded raw header value into one line."""
    value = _FOLD.sub("", value.rstrip("\r\n"))
    return value.replace("\r", "").replace("\n", " ")


def raw_headers(msg: Message, name: str) -> list[str]:
    """Return every raw value of a header, unfolded."""
    wanted = name.lower()
    values: list[str] = []
    try:
        items = msg.raw_items() if hasattr(msg, "raw_items") else msg.items()
        for key, value in items:
            if str(key).lower() == wanted:
                values.append(unfold(str(value)))
    except Exception:
        return values
    return values


def header_text(msg: Message, name: str, *, fallback_charset: str | None = None) -> str | None:
    """Return a header decoded to readable text, or None when it is absent."""
    value = raw_header(msg, name)
    if value is None:
        return None
    # Strip the raw value, not the decoded text: a space inside an encoded word is content.
    return decode_words(value.strip(), fallback_charset=fallback_charset)


def decode_words(value: str, *, fallback_charset: str | None = None) -> str:
    """Decode RFC 2047 encoded words and stray 8-bit bytes in a header value."""
    # Each piece is (charset or None for plain text, raw bytes).
    pieces: list[tuple[str | None, bytes]] = []
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        follows_word = bool(pieces) and pieces[-1][0] is not None
        # Whitespace between two encoded words is not part of the text (RFC 2047 §6.2).
        if between and not (follows_word and _ONLY_SPACE.match(between)):
            pieces.append((None, reencode_surrogates(between)))
        charset = match.group(1).split("*", 1)[0]
        data = _decode_word_payload(match.group(2), match.group(3))
        last_charset = pieces[-1][0] if pieces else None
        if last_charset is not None and last_charset.lower() == charset.lower():
            # A multi-byte character may be split across adjacent words.
            pieces[-1] = (last_charset, pieces[-1][1] + data)
        else:
            pieces.append((charset, data))
        position = match.end()
    if position < len(value):
        pieces.append((None, reencode_surrogates(value[position:])))
    return "".join(_decode_piece(charset, data, fallback_charset) for charset, data in pieces)


def _decode_piece(charset: str | None, data: bytes, fallback_charset: str | None) -> str:
    if charset is not None:
        return decode_text(data, charset)
    if data.isascii():
        # NULs too: PostgreSQL refuses them in text, and decode_text drops them as well.
        return data.decode("ascii").replace("\x00", "")
    # Raw 8-bit header text: most often UTF-8, otherwise the body's charset.
    return decode_text(data, fallback_charset or "utf-8")


def _decode_word_payload(encoding: str, text: str) -> bytes:
    if encoding in "Bb":
        cleaned = re.sub(r"[^A-Za-z0-9+/]", "", text)
        cleaned += "=" * (-len(cleaned) % 4)
        try:
            return base64.b64decode(cleaned)
        except (binascii.Error, ValueError):
            return text.encode("ascii", "replace")
    raw = text.replace("_", " ").encode("utf-8", "surrogateescape")
    return binascii.a2b_qp(raw)


def addresses(msg: Message, *names: str) -> list[tuple[str, str]]:
    """Return ``(display name, lower-cased address)`` pairs from the given headers.

    Entries without a plausible address are dropped.
    """
    found: list[tuple[str, str]] = []
    for name in names:
        for value in raw_headers(msg, name):
            found.extend(parse_addresses(value))
    return found


def parse_addresses(value: str) -> list[tuple[str, str]]:
    """Parse one raw address-list header value; never raises."""
    return list(_address_header(value)[0])


def display_name_only(value: str | None) -> str:
    """Return the display name of an address header even when it has no address."""
    if not value:
        return ""
    return _address_header(value)[1]


def _address_header(value: str) -> tuple[tuple[tuple[str, str], ...], str]:
    if len(value) <= _CACHED_ADDRESS_CHARS:
        return _cached_address_header(value)
    return _parse_address_header(value)


def _parse_address_header(value: str) -> tuple[tuple[tuple[str, str], ...], str]:
    """Return (the plausible addresses, the first display name) of a header value."""
    try:
        pairs = getaddresses([value])
    except Exception:  # getaddresses has crashed on hostile input before
        return _rescue_addresses(value), ""
    return _plausible_addresses(value, pairs) or _rescue_addresses(value), _display_name(
        value, pairs
    )


# getaddresses is slow pure Python, and the same From, To and Cc values are read by
# several checks per mail and recur across mails (customers, our own addresses).
_cached_address_header = lru_cache(maxsize=1024)(_parse_address_header)


def _plausible_addresses(value: str, pairs: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    result: list[tuple[str, str]] = []
    lowered = value.lower()
    for display, address in pairs:
        address = decode_words(address).strip().strip("<>").strip().lower()
        # getaddresses glues "a@b.com www.b.com" into one bogus address; insist that
        # what it returns really occurs in the header.
        if not _ADDRESS.match(address) or address not in lowered:
            continue
        result.append((decode_words(display).strip().strip("\"'").strip(), address))
    return tuple(result)


def _rescue_addresses(value: str) -> tuple[tuple[str, str], ...]:
    """Find bare addresses in a list getaddresses gave up on."""
    result: list[tuple[str, str]] = []
    for token in re.split(r"[\s,;<>]+", value):
        token = token.strip("\"'()").lower()
        if _ADDRESS.match(token):
            result.append(("", token))
    return tuple(result)


def _display_name(value: str, pairs: list[tuple[str, str]]) -> str:
    for display, _ in pairs:
        name = decode_words(display).strip().strip("\"'").strip()
        if name:
            return name
    comment = re.search(r"\(([^()]*)\)", value)
    return decode_words(comment.group(1)).strip() if comment else ""


def message_ids(value: str | None) -> tuple[str, ...]:
    """Return the ids in a Message-ID-like header without angle brackets, deduplicated."""
    if not value:
        return ()
    ids = _BRACKETED_ID.findall(value)
    if not ids:
        ids = [token for token in re.split(r"[\s,]+", value) if token]
    seen: dict[str, None] = {}
    for item in ids:
        item = item.strip().strip("<>").strip()
        if item and len(item) <= 998:
            seen.setdefault(item, None)
    return tuple(seen)


def is_plausible_address(value: str) -> bool:
    """Tell whether a string looks like ``local@domain``."""
    return bool(_ADDRESS.match(value))
