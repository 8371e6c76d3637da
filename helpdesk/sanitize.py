"""HTML from outside is cleaned with nh3 before it is stored or shown."""

from __future__ import annotations

import html as html_lib
import re

import nh3
from markdown_it import MarkdownIt

_TAGS = nh3.ALLOWED_TAGS | {"img", "span", "div", "font", "center", "u", "s", "hr"}
_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "img": {"src", "alt", "title", "width", "height"},
    "a": {"href", "title"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align"},
    "*": {"dir", "lang"},
}
# cid: stays so inline images can be rewritten to stored attachments after sanitizing.
_SCHEMES = {"http", "https", "mailto", "tel", "cid"}

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})


def clean_html(value: str) -> str:
    """Return ``value`` with scripts, handlers and unknown tags removed."""
    return nh3.clean(
        value,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )


def markdown_to_html(text: str) -> str:
    """Render an agent's Markdown reply to safe HTML (raw HTML in the source is escaped)."""
    return clean_html(_markdown.render(text))


def text_to_html(text: str) -> str:
    """Render plain text as escaped HTML paragraphs."""
    paragraphs = re.split(r"\n{2,}", text.strip())
    return "".join(
        "<p>" + html_lib.escape(p).replace("\n", "<br>") + "</p>" for p in paragraphs if p
    )
