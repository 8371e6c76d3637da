"""The email channel: IMAP in, SMTP out, parse raw mail into InboundMessage.

``init_app(app)`` wires it into an app: models, the ``email`` channel, the
auto-acknowledgement listener, the poller jobs, the admin pages (mailboxes and
the shared quarantine) and the ``flask`` commands. It is safe to call twice.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from channels.email.parse import parse_email

if TYPE_CHECKING:  # pragma: no cover
    from flask import Flask

__all__ = ["init_app", "parse_email"]

#: Settings and their defaults; read from the environment once, at init_app.
SETTINGS = {
    # Seconds between polls in the embedded job worker; 0 turns the periodic poll off.
    "RAPPORT_EMAIL_POLL_SECONDS": 30,
    # How long a poller's lease on a mailbox lasts without renewal.
    "RAPPORT_EMAIL_LEASE_SECONDS": 120,
    # How long one IDLE waits before the worker polls anyway (and renews its lease).
    "RAPPORT_EMAIL_IDLE_SECONDS": 60,
    # Mails ingested per commit. Batching loses nothing: mail of an uncommitted batch
    # is still unread on the server past the stored last UID, so a crash reads it
    # again and Message-ID dedupe keeps it single. It halves the cost per mail of a
    # backlog (bench/RESULTS.md); a batch of 20 commits within a fraction of a second.
    "RAPPORT_EMAIL_COMMIT_EVERY": 20,
    # Worker processes that parse a big backlog while the poller ingests (0: parse in
    # the poller). Used only for passes of at least 100 new mails.
    "RAPPORT_EMAIL_PARSE_PROCESSES": 1,
    # Automatic acknowledgements per sender per hour.
    "RAPPORT_EMAIL_AUTOACK_PER_HOUR": 3,
}


def init_app(app: Flask) -> None:
    """Register the email channel, its pages, jobs, listeners and commands on ``app``."""
    for name, default in SETTINGS.items():
        value = os.environ.get(name)
        app.config.setdefault(name, int(value) if value else default)
    # XOAUTH2 refresh-token providers: JSON, or the path of a JSON file (see oauth.py).
    app.config.setdefault(
        "RAPPORT_EMAIL_OAUTH_PROVIDERS", os.environ.get("RAPPORT_EMAIL_OAUTH_PROVIDERS", "")
    )

    from channels.base import register
    from channels.email import autoreply, imap, inbound, models, oauth  # noqa: F401 (registration)
    from channels.email.channel import EmailChannel
    from helpdesk import quarantine
    from helpdesk.models import quarantine as quarantine_models  # noqa: F401 (metadata)

    register(EmailChannel())
    oauth.init_app(app)
    if "email_admin" not in app.blueprints:
        from channels.email import cli, views

        app.register_blueprint(views.bp)
        cli.register(app)
    quarantine.init_app(app)
