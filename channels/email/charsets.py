"""Turn bytes into text when the declared charset is wrong, missing or unknown."""

from __future__ import annotations

import codecs
import re

# Labels that mail clients use for a narrower charset than they really send.
# Each maps to a superset codec, the way browsers (WHATWG Encoding) do it.
_SUPERSETS: dict[str, str] = {
    "gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "euc-cn": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "iso-2022-jp": "iso2022_jp_2",
    "big5": "big5hkscs",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "ascii",
    "ansi_x3.4-1968": "ascii",
    "x-unknown": "",
    "unknown-8bit": "",
    "unknown": "",
    "default": "",
}

# Codecs Python knows that are not text charsets or that would interpret escapes.
_REFUSED = frozenset(
    {"unicode_escape", "raw_unicode_escape", "undefined", "idna", "punycode", "mbcs", "oem"}
)

_SINGLE_BYTE_PREFIXES = ("ascii", "cp125", "cp8", "iso8859", "latin", "koi8", "mac", "tis")
_SURROGATE = re.compile("[\ud800-\udfff]")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def codec_for(label: str | None) -> str | None:
    """Return a usable Python text codec name for a MIME charset label, or None."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _SUPERSETS.get(name, name)
    if not name:
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED:
        return None
    return info.name


def html_meta_charset(data: bytes) -> str | None:
    """Return the charset named by an HTML ``<meta>`` tag near the top, if any."""
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii", "replace") if match else None


def decode_text(data: bytes, charset: str | None = None) -> str:
    """Decode bytes to str; never raises.

    Tries the declared charset (widened to its usual superset), then UTF-8, then
    Windows-1252, and finally the declared charset with replacement characters
    or Latin-1, which maps every byte. The result holds no NULs or lone
    surrogates, so it is safe for nh3 and for every database we support.
    """
    return _scrub(_decode(data, charset))


def _scrub(text: str) -> str:
    text = text.replace("\x00", "")
    if _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return text


def _decode(data: bytes, charset: str | None) -> str:
    declared = codec_for(charset)
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8", "replace")
    # Valid multi-byte UTF-8 is almost never real single-byte text, while UTF-8
    # mislabelled as Latin-1 or Windows-125x is common; so try UTF-8 first there.
    utf8_first = declared is None or declared.startswith(_SINGLE_BYTE_PREFIXES)
    # Half-width katakana (ESC ( I) is common in Japanese mail labelled iso-2022-jp.
    fallback_jp = "iso2022_jp_ext" if declared == "iso2022_jp_2" else None
    order = ("utf-8", declared) if utf8_first else (declared, fallback_jp, "utf-8")
    for candidate in (*order, "cp1252"):
        if candidate is None:
            continue
        try:
            return data.decode(candidate)
        except (UnicodeDecodeError, LookupError, ValueError):
            continue
    if declared and declared not in ("ascii", "utf-8", "cp1252"):
        try:
            return data.decode(declared, "replace")
        except (LookupError, ValueError):
            pass
    return data.decode("latin-1")


def reencode_surrogates(value: str) -> bytes:
    """Recover the original bytes of a string read with ``surrogateescape``."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace")
