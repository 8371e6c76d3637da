"""The TLS context every IMAP, SMTP and token-endpoint connection verifies servers with.

It trusts the system's CA store, plus the PEM file (or OpenSSL hashed directory)
an admin names in ``RAPPORT_EMAIL_CA_FILE``: a mail server behind a company CA
then verifies like any public one, with hostname checks still on.
"""

from __future__ import annotations

import functools
import os
import ssl

from flask import current_app, has_app_context


def ca_file() -> str | None:
    """The extra CA the current app trusts, if any."""
    if not has_app_context():
        return None
    return current_app.config.get("RAPPORT_EMAIL_CA_FILE") or None


def tls_context() -> ssl.SSLContext:
    """A verifying context; one per CA file (and its version), built once per process."""
    path = ca_file()
    if path is None:
        return _context(None, 0)
    try:
        # A replaced file is picked up without a restart; unchanged, the cached one is reused.
        version = os.stat(path).st_mtime_ns
    except OSError as exc:
        raise ssl.SSLError(f"RAPPORT_EMAIL_CA_FILE cannot be read: {exc}") from exc
    return _context(path, version)


@functools.cache
def _context(path: str | None, _version: int) -> ssl.SSLContext:
    # Loading the system store takes ~0.15 s, hence the cache.
    context = ssl.create_default_context()
    if path is not None:
        if os.path.isdir(path):
            context.load_verify_locations(capath=path)
        else:
            context.load_verify_locations(cafile=path)
    return context
