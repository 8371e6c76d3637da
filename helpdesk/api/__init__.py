"""JSON REST API under /api/v1, authenticated with scoped tokens."""

from .views import bp

__all__ = ["bp"]
