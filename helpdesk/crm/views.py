"""CRM pages (placeholder)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("crm", __name__, url_prefix="/crm")
