"""Fill a canned response's ``{{ contact.first_name }}`` placeholders, safely.

Canned responses are written by admins, but they are still templates: render
them in Jinja's sandbox, and hand the template plain dictionaries rather than
model objects, so a placeholder can reach a few display fields and nothing else
(no relationships, no methods, no attributes of the session).
"""

from __future__ import annotations

from typing import Any

from jinja2 import ChainableUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from helpdesk.models import CannedResponse, Ticket, User

# Plain text out: the reply is Markdown that is rendered and sanitised when it is stored.
_env = SandboxedEnvironment(autoescape=False, undefined=ChainableUndefined)


def placeholder_context(ticket: Ticket, agent: User | None) -> dict[str, Any]:
    """Return the values a canned response may use."""
    contact = ticket.contact
    return {
        "contact": {
            "name": contact.display_name,
            "first_name": contact.first_name,
            "email": contact.email or "",
        },
        "agent": {
            "name": agent.name if agent else "",
            "first_name": agent.first_name if agent else "",
            "email": agent.email if agent else "",
        },
        "ticket": {"number": ticket.number, "subject": ticket.subject},
    }


def render_canned(canned: CannedResponse, ticket: Ticket, agent: User | None) -> str:
    """Return ``canned.body`` with placeholders filled; a broken template comes back as written."""
    try:
        return _env.from_string(canned.body).render(placeholder_context(ticket, agent))
    except TemplateError:
        return canned.body
