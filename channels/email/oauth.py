"""XOAUTH2 for mailboxes: a built-in OAuth2 refresh-token provider, configured from settings.

Protocol: RFC 6749 section 6 (refreshing an access token) and section 2.3.1
(client authentication); the SASL string is Google's and Microsoft's XOAUTH2,
sent by imapclient's ``oauth2_login``.

``RAPPORT_EMAIL_OAUTH_PROVIDERS`` holds JSON (inline, or the path of a JSON
file) naming one provider per key::

    {"google": {"token_url": "https://oauth2.googleapis.com/token",
                "client_id": "...", "client_secret": "...",
                "refresh_tokens": {"support@example.com": "1//0g..."}}}

Optional keys: ``refresh_token`` (for any username without its own),
``scope`` (Microsoft wants one), ``client_auth`` ("basic", the default, or
"post" to send the client credentials in the form). A mailbox whose "Sign in
with" names the provider logs in with an access token fetched with its
username's refresh token, cached until shortly before it expires. Tokens never
reach a log line or an error message.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from flask import Flask, current_app, has_app_context

from channels.email.tls import tls_context
from helpdesk.operations.contacts import OperationError

log = logging.getLogger(__name__)

SETTING = "RAPPORT_EMAIL_OAUTH_PROVIDERS"
_EXTENSION = "rapport_email_oauth"
_KEYS = frozenset(
    {
        "token_url",
        "client_id",
        "client_secret",
        "refresh_tokens",
        "refresh_token",
        "scope",
        "client_auth",
    }
)
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
#: Refresh this long before the token expires (or at half its life, if shorter).
MARGIN_SECONDS = 60.0
#: Assumed lifetime when the server leaves ``expires_in`` out (RFC 6749 only recommends it).
DEFAULT_LIFETIME = 300.0
TIMEOUT = 30.0


class TokenUnavailable(OperationError):
    """No access token could be had; the message says why, without any secret."""


@dataclass(frozen=True)
class ProviderConfig:
    """One configured OAuth2 client; secrets never show in repr."""

    name: str
    token_url: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    refresh_tokens: dict[str, str] = field(default_factory=dict, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    scope: str | None = None
    client_auth: str = "basic"


@dataclass
class _Cached:
    token: str = field(repr=False)
    refresh_at: float


class RefreshTokenProvider:
    """A token provider: ``provider(username)`` gives a live access token for that user."""

    def __init__(
        self,
        config: ProviderConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = TIMEOUT,
    ) -> None:
        self.config = config
        self.clock = clock
        self.timeout = timeout
        self._cache: dict[str, _Cached] = {}
        # Servers may rotate refresh tokens; the newest one lives here until a restart.
        self._rotated: dict[str, str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<RefreshTokenProvider {self.config.name} {self.config.token_url}>"

    def __call__(self, username: str) -> str:
        with self._lock:
            cached = self._cache.get(username.lower())
            if cached is not None and self.clock() < cached.refresh_at:
                return cached.token
            token, lifetime = self._refresh(username)
            margin = min(MARGIN_SECONDS, lifetime / 2)
            self._cache[username.lower()] = _Cached(token, self.clock() + lifetime - margin)
            return token

    def forget(self, username: str | None = None) -> None:
        """Drop cached access tokens (one user's, or all), e.g. after the server refused one."""
        with self._lock:
            if username is None:
                self._cache.clear()
            else:
                self._cache.pop(username.lower(), None)

    def _refresh_token_for(self, username: str) -> str:
        config = self.config
        by_user = {k.lower(): v for k, v in config.refresh_tokens.items()}
        token = self._rotated.get(username.lower()) or by_user.get(username.lower())
        token = token or config.refresh_token
        if not token:
            raise TokenUnavailable(
                f"XOAUTH2 provider '{config.name}' has no refresh token for '{username}'"
            )
        return token

    def _refresh(self, username: str) -> tuple[str, float]:
        config = self.config
        form = {"grant_type": "refresh_token", "refresh_token": self._refresh_token_for(username)}
        if config.scope:
            form["scope"] = config.scope
        headers = {"Accept": "application/json"}
        if config.client_auth == "post":
            form["client_id"] = config.client_id
            if config.client_secret:
                form["client_secret"] = config.client_secret
        else:
            # RFC 6749 2.3.1: both parts form-encoded before the Basic encoding.
            pair = f"{quote(config.client_id, safe='')}:{quote(config.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        request = urllib.request.Request(  # noqa: S310 (the URL is checked to be https or loopback)
            config.token_url, data=urlencode(form).encode(), headers=headers, method="POST"
        )
        context = tls_context() if config.token_url.startswith("https:") else None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=context) as answer:  # noqa: S310
                body = _json(answer.read())
        except urllib.error.HTTPError as exc:
            body = _json(exc.read())
            raise TokenUnavailable(
                f"The token endpoint of '{config.name}' refused to refresh the access token "
                f"for '{username}' (HTTP {exc.code}{_oauth_error(body)})"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TokenUnavailable(
                f"The token endpoint of '{config.name}' could not be reached ({reason})"
            ) from None
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise TokenUnavailable(
                f"The token endpoint of '{config.name}' answered without an access token"
                f"{_oauth_error(body)}"
            )
        try:
            lifetime = float(body.get("expires_in") or DEFAULT_LIFETIME)
        except (TypeError, ValueError):
            lifetime = DEFAULT_LIFETIME
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated:
            self._rotated[username.lower()] = rotated
        log.info(
            "XOAUTH2 %s: new access token for %s, valid %.0f s", config.name, username, lifetime
        )
        return token, lifetime


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _oauth_error(body: dict[str, Any]) -> str:
    """The RFC 6749 5.2 error code and description, which carry no secrets."""
    error = body.get("error")
    if not isinstance(error, str):
        return ""
    description = body.get("error_description")
    return f": {error}" + (f", {description}" if isinstance(description, str) else "")


# Configuration ---------------------------------------------------------------------


def parse_providers(value: str) -> dict[str, ProviderConfig]:
    """Read the setting: JSON, or the path of a JSON file; raises ValueError in words."""
    text = value.strip()
    if not text:
        return {}
    if not text.startswith("{"):
        try:
            text = Path(text).read_text()
        except OSError as exc:
            raise ValueError(f"{SETTING}: cannot read {text}: {exc.strerror}") from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{SETTING} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{SETTING} must be a JSON object of provider name: settings")
    return {str(name): _provider_config(str(name), spec) for name, spec in raw.items()}


def _provider_config(name: str, spec: Any) -> ProviderConfig:
    where = f"{SETTING}[{name!r}]"
    if not isinstance(spec, dict):
        raise ValueError(f"{where} must be an object")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise ValueError(f"{where} has unknown keys: {', '.join(unknown)}")
    for key in ("token_url", "client_id"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise ValueError(f"{where} needs '{key}'")
    url = urlsplit(spec["token_url"])
    # Client secrets and refresh tokens travel in this request: never in the clear
    # beyond this machine.
    if url.scheme != "https" and not (url.scheme == "http" and url.hostname in _LOOPBACK):
        raise ValueError(f"{where}: token_url must be https://")
    refresh_tokens = spec.get("refresh_tokens") or {}
    if not isinstance(refresh_tokens, dict) or not all(
        isinstance(v, str) for v in refresh_tokens.values()
    ):
        raise ValueError(f"{where}: refresh_tokens must map usernames to refresh tokens")
    if not refresh_tokens and not spec.get("refresh_token"):
        raise ValueError(f"{where} needs 'refresh_tokens' or 'refresh_token'")
    client_auth = spec.get("client_auth", "basic")
    if client_auth not in ("basic", "post"):
        raise ValueError(f"{where}: client_auth must be 'basic' or 'post'")
    return ProviderConfig(
        name=name,
        token_url=spec["token_url"],
        client_id=spec["client_id"],
        client_secret=str(spec.get("client_secret") or ""),
        refresh_tokens={str(k): v for k, v in refresh_tokens.items()},
        refresh_token=spec.get("refresh_token") or None,
        scope=spec.get("scope") or None,
        client_auth=client_auth,
    )


def init_app(app: Flask) -> None:
    """Build the providers the app's setting names; a bad setting stops the app starting."""
    configs = parse_providers(app.config.get(SETTING) or "")
    app.extensions[_EXTENSION] = {
        name: RefreshTokenProvider(config) for name, config in configs.items()
    }


def configured_providers() -> dict[str, RefreshTokenProvider]:
    """The current app's configured providers (none outside an app context)."""
    if not has_app_context():
        return {}
    return dict(current_app.extensions.get(_EXTENSION, {}))
