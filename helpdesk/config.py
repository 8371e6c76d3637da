"""Configuration, read once from the environment (``RAPPORT_*``, ``DATABASE_URL``, ``REDIS_URL``)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def load_config(instance_path: str) -> dict[str, Any]:
    """Return the settings for an app whose instance folder is ``instance_path``."""
    instance = Path(instance_path)
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance / 'rapport.db'}"
    # Heroku-style URLs name the driver "postgres"; SQLAlchemy wants the psycopg 3 dialect.
    if database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgres://") :]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
    redis_url = os.environ.get("REDIS_URL") or None
    return {
        "SECRET_KEY": os.environ.get("RAPPORT_SECRET_KEY") or _secret_key(instance),
        "SQLALCHEMY_DATABASE_URI": database_url,
        # A ping before each checkout guards against dropped server connections;
        # a local SQLite file has none, and the ping costs a round trip per transaction.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": not database_url.startswith("sqlite")},
        "REDIS_URL": redis_url,
        "RAPPORT_PUBLIC_URL": os.environ.get("RAPPORT_PUBLIC_URL", "http://127.0.0.1:5000"),
        "RAPPORT_ATTACHMENT_DIR": os.environ.get(
            "RAPPORT_ATTACHMENT_DIR", str(instance / "attachments")
        ),
        "RAPPORT_MAX_UPLOAD_BYTES": _int("RAPPORT_MAX_UPLOAD_BYTES", 25 * 1024 * 1024),
        # Jobs run in consumer threads inside the web process unless a separate
        # huey_consumer is started (then set RAPPORT_EMBEDDED_WORKER=0).
        "RAPPORT_EMBEDDED_WORKER": _bool("RAPPORT_EMBEDDED_WORKER", True),
        "RAPPORT_WORKER_THREADS": _int("RAPPORT_WORKER_THREADS", 2),
        "RAPPORT_JOBS_IMMEDIATE": _bool("RAPPORT_JOBS_IMMEDIATE", False),
        "RAPPORT_HUEY_PATH": os.environ.get("RAPPORT_HUEY_PATH", str(instance / "jobs.db")),
        "RAPPORT_REOPEN_DAYS": _int("RAPPORT_REOPEN_DAYS", 14),
        "RAPPORT_DEFAULT_LOCALE": os.environ.get("RAPPORT_DEFAULT_LOCALE", "en"),
        "RAPPORT_ROUND_ROBIN": _bool("RAPPORT_ROUND_ROBIN", False),
        "RAPPORT_PASSWORD_HASH": os.environ.get("RAPPORT_PASSWORD_HASH", "scrypt"),
        "RAPPORT_API_RATE_LIMIT": os.environ.get("RAPPORT_API_RATE_LIMIT", "600/minute"),
        "RAPPORT_API_MAX_JSON_BYTES": _int("RAPPORT_API_MAX_JSON_BYTES", 1024 * 1024),
        # A PEM file (or hashed directory) of CAs trusted for mail servers besides the system's.
        "RAPPORT_EMAIL_CA_FILE": os.environ.get("RAPPORT_EMAIL_CA_FILE") or None,
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        "RATELIMIT_HEADERS_ENABLED": True,
        "MAX_CONTENT_LENGTH": _int("RAPPORT_MAX_UPLOAD_BYTES", 25 * 1024 * 1024) + 1024 * 1024,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool("RAPPORT_SECURE_COOKIES", False),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "WTF_CSRF_TIME_LIMIT": None,
        "BABEL_DEFAULT_LOCALE": "en",
        "RAPPORT_LOCALES": ["en", "el", "hu", "ar"],
    }


def _secret_key(instance: Path) -> str:
    """Create the secret key once per instance, so sessions survive restarts."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key
