"""Sanitize mail HTML with nh3 and turn HTML into readable plain text."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from html import escape
from html.parser import HTMLParser

import nh3

# Inline images arrive as ``cid:`` URLs; they must survive so the core can
# rewrite them to stored attachment URLs.
_URL_SCHEMES = frozenset(nh3.ALLOWED_URL_SCHEMES) | {"cid"}

_GENERIC_ATTRIBUTES = frozenset(
    {"dir", "lang", "title", "style", "align", "valign", "width", "height", "bgcolor"}
)

# Presentational CSS only: nothing that positions, overlays or loads URLs.
_STYLE_PROPERTIES = frozenset(
    {
        "background-color",
        "border",
        "border-bottom",
        "border-collapse",
        "border-left",
        "border-right",
        "border-top",
        "color",
        "direction",
        "display",
        "font",
        "font-family",
        "font-size",
        "font-style",
        "font-weight",
        "height",
        "line-height",
        "list-style-type",
        "margin",
        "margin-bottom",
        "margin-left",
        "margin-right",
        "margin-top",
        "max-width",
        "padding",
        "padding-bottom",
        "padding-left",
        "padding-right",
        "padding-top",
        "text-align",
        "text-decoration",
        "unicode-bidi",
        "vertical-align",
        "white-space",
        "width",
    }
)


def _attributes() -> dict[str, set[str]]:
    attributes = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
    attributes["*"] = set(_GENERIC_ATTRIBUTES)
    return attributes


_ATTRIBUTES = _attributes()


def _sanitizer() -> Callable[[str], str]:
    url_schemes, styles = set(_URL_SCHEMES), set(_STYLE_PROPERTIES)
    if hasattr(nh3, "Cleaner"):  # nh3 0.3+: convert the rules once, not on every call
        cleaner = nh3.Cleaner(
            attributes=_ATTRIBUTES, url_schemes=url_schemes, filter_style_properties=styles
        )
        return cleaner.clean
    return partial(
        nh3.clean, attributes=_ATTRIBUTES, url_schemes=url_schemes, filter_style_properties=styles
    )


_clean = _sanitizer()


def sanitize_html(html: str) -> str:
    """Return HTML that is safe to store and show; keeps ``cid:`` image sources."""
    try:
        return _clean(html)
    except Exception:  # never let odd markup sink a message
        return escape(html_to_text(html)).replace("\n", "<br>")


_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "center",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figure",
        "footer",
        "form",
        "header",
        "li",
        "main",
        "nav",
        "ol",
        "section",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "ul",
    }
)
_PARAGRAPH_TAGS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "hr"})
_VOID_TAGS = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    }
)
_HIDDEN_TAGS = frozenset({"head", "script", "style", "title", "template", "noscript", "xml"})
# Markers mail clients put around quoted history (Gmail, Apple Mail, Thunderbird, Yahoo).
_QUOTE_CLASSES = frozenset(
    {"gmail_quote", "gmail_attr", "moz-cite-prefix", "yahoo_quoted", "gmail_signature"}
)
# Outlook puts everything after these markers in the quoted part.
_QUOTE_START_IDS = frozenset(
    {"divrplyfwdmsg", "appendonsend", "stopspelling", "mail-editor-reference-message-container"}
)
_LINK_SCHEMES = ("http://", "https://", "mailto:", "tel:")


_WHITESPACE = re.compile(r"\s+")


class _FoundText(BaseException):
    """Stops ``has_text`` at the first visible character (not an error, so no Exception)."""


class _TextExtractor(HTMLParser):
    def __init__(self, *, drop_quotes: bool, stop_at_text: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.drop_quotes = drop_quotes
        self.stop_at_text = stop_at_text
        self.out: list[str] = []
        # Open elements: (tag, hides its content, output index, href)
        self.stack: list[tuple[str, bool, int, str | None]] = []
        self.hidden_depth = 0
        self.pre_depth = 0
        self.stopped = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.stopped:
            return
        values = {name: value or "" for name, value in attrs}
        if self.drop_quotes and values.get("id", "").lower() in _QUOTE_START_IDS:
            self.stopped = True
            return
        if tag in _VOID_TAGS:
            if tag == "br":
                self._emit("\n")
            elif tag == "hr":
                self._break(2)
            return
        hides = tag in _HIDDEN_TAGS or (self.drop_quotes and self._is_quote(tag, values))
        href = values.get("href") if tag == "a" else None
        self.stack.append((tag, hides, len(self.out), href))
        if hides:
            self.hidden_depth += 1
        if tag == "pre":
            self.pre_depth += 1
        if tag in _PARAGRAPH_TAGS:
            self._break(2)
        elif tag in _BLOCK_TAGS:
            self._break(1)
            if tag == "li":
                self._emit("- ")
        elif tag in ("td", "th"):
            self._emit(" ")

    def handle_endtag(self, tag: str) -> None:
        if self.stopped:
            return
        if not any(entry[0] == tag for entry in self.stack):
            return
        while self.stack:
            name, hides, start, href = self.stack.pop()
            if hides:
                self.hidden_depth -= 1
            if name == "pre":
                self.pre_depth -= 1
            if name == "a" and href:
                self._append_link(start, href)
            if name in _PARAGRAPH_TAGS:
                self._break(2)
            elif name in _BLOCK_TAGS:
                self._break(1)
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.stopped:
            return
        if self.pre_depth == 0:
            data = _WHITESPACE.sub(" ", data)
        self._emit(data)

    def _emit(self, text: str) -> None:
        if self.hidden_depth == 0 and not self.stopped:
            self.out.append(text)
            if self.stop_at_text and text.strip():
                raise _FoundText

    def _break(self, count: int) -> None:
        self._emit("\n" * count)

    def _append_link(self, start: int, href: str) -> None:
        label = "".join(self.out[start:]).strip()
        href = href.strip()
        if not label or not href.lower().startswith(_LINK_SCHEMES):
            return
        target = href[len("mailto:") :] if href.lower().startswith("mailto:") else href
        if target.rstrip("/") != label.rstrip("/"):
            self._emit(f" ({href})")

    @staticmethod
    def _is_quote(tag: str, values: dict[str, str]) -> bool:
        if tag == "blockquote":
            return True
        classes = set(values.get("class", "").split())
        return bool(classes & _QUOTE_CLASSES)


def html_to_text(html: str, *, drop_quotes: bool = False) -> str:
    """Return readable text for HTML: paragraphs, line breaks, links as "text (url)".

    With ``drop_quotes`` the quoted history that mail clients mark up
    (blockquotes, Gmail and Outlook reply containers) is left out.
    """
    parser = _TextExtractor(drop_quotes=drop_quotes)
    # On broken markup keep whatever text was extracted so far.
    with suppress(Exception):
        parser.feed(html)
        parser.close()
    return _tidy("".join(parser.out))


def has_text(html: str) -> bool:
    """Tell whether ``html_to_text(html)`` would be non-blank, stopping at the first text."""
    parser = _TextExtractor(drop_quotes=False, stop_at_text=True)
    try:
        # On broken markup decide on what was extracted so far, as html_to_text does.
        with suppress(Exception):
            parser.feed(html)
            parser.close()
    except _FoundText:
        return True
    return bool(_tidy("".join(parser.out)))


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\xa0", " ")
    lines = [line.strip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()
