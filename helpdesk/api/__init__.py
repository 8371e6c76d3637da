"""JSON REST API under /api/v1, authenticated with scoped tokens.

One module per resource; importing them attaches their routes to ``bp``.
"""

from helpdesk.extensions import limiter

from . import contacts, imports, messages, openapi, orders, tickets  # noqa: F401  (routes)
from .auth import rate_limit, rate_limit_key
from .base import bp

# One budget per token across every endpoint (by a hash of the token, never the token).
limiter.shared_limit(rate_limit, scope="api", key_func=rate_limit_key)(bp)

__all__ = ["bp"]
