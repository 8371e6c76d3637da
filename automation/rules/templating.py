"""Reply and note templates, rendered in a Jinja sandbox (admins write, customers read)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Template, Undefined
from jinja2.sandbox import SandboxedEnvironment

from .schema import TEMPLATE_LOCALES


class _Blank(Undefined):
    """A missing placeholder renders as nothing rather than failing a customer reply."""

    def __str__(self) -> str:
        return ""


_env = SandboxedEnvironment(autoescape=False, undefined=_Blank)


@lru_cache(maxsize=512)
def compile_template(source: str) -> Template:
    """Compile once; raises jinja2.TemplateSyntaxError for a broken template."""
    return _env.from_string(source)


def render(source: str, context: dict[str, Any]) -> str:
    """Render ``source`` with ``context`` in the sandbox."""
    return compile_template(source).render(**context).strip()


def pick_locale(templates: dict[str, str], *preferred: str | None) -> str:
    """The first preferred language the template has, else English."""
    for locale in preferred:
        if not locale:
            continue
        short = locale.split("-")[0].split("_")[0].lower()
        if short in templates and short in TEMPLATE_LOCALES:
            return short
    return "en"


__all__ = ["compile_template", "pick_locale", "render"]
