"""Entry point for ``flask --app wsgi``, gunicorn (``wsgi:app``) and ``huey_consumer wsgi.huey``."""

from helpdesk import create_app
from helpdesk.jobs import huey

app = create_app()

__all__ = ["app", "huey"]
