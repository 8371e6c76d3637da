"""Mailbox passwords, encrypted at rest with a key derived from the app's SECRET_KEY.

A copy of the database (a backup, a dump handed to support) then holds no
usable IMAP or SMTP password. The column type does the work, so the rest of the
code reads and writes plain strings.

Fernet (AES-128-CBC with HMAC-SHA256) keyed by HKDF-SHA256 over SECRET_KEY,
with a label of its own so this key is never the one that signs sessions.
Keys in ``SECRET_KEY_FALLBACKS`` still decrypt, so a key can be rotated: the
next save encrypts with the new one. When no key decrypts a value, reading it
gives :class:`UnreadablePassword` (an empty string that keeps the ciphertext)
instead of failing, and connecting with it raises :class:`PasswordUnreadable`,
which tells the admin to enter the password again.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

#: HKDF "info": names what the derived key is for.
LABEL = b"rapport/email/mailbox-passwords/v1"


class UnreadablePassword(str):
    """A stored password no current key decrypts: empty and falsy, but the ciphertext is kept.

    Writing it back stores the same ciphertext, so restoring the old key
    makes it readable again.
    """

    ciphertext: str

    def __new__(cls, ciphertext: str) -> UnreadablePassword:
        value = super().__new__(cls, "")
        value.ciphertext = ciphertext
        return value

    def __repr__(self) -> str:
        return "UnreadablePassword()"


class PasswordUnreadable(ConnectionError):
    """The stored password cannot be decrypted (the secret key changed); it must be re-entered.

    A ConnectionError, like a refused login: delivery keeps retrying until an
    admin enters the password again.
    """

    def __init__(self, service: str) -> None:
        super().__init__(
            f"The stored {service} password can no longer be decrypted, probably because "
            "the secret key (RAPPORT_SECRET_KEY) changed: the password must be re-entered."
        )


def is_unreadable(value: str | None) -> bool:
    return isinstance(value, UnreadablePassword)


@functools.lru_cache(maxsize=8)
def _fernet(secret_key: str | bytes) -> Fernet:
    secret = secret_key.encode() if isinstance(secret_key, str) else secret_key
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=LABEL).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_with(secret_key: str | bytes, password: str) -> str:
    """The password encrypted under ``secret_key``, as ASCII text."""
    return _fernet(secret_key).encrypt(password.encode()).decode("ascii")


def decrypt_with(secret_keys: list[str | bytes], token: str) -> str:
    """The password, decrypted with the first key that fits; raises InvalidToken when none does."""
    return MultiFernet([_fernet(key) for key in secret_keys]).decrypt(token.encode()).decode()


def _current_keys() -> list[str | bytes]:
    config = current_app.config
    return [config["SECRET_KEY"], *(config.get("SECRET_KEY_FALLBACKS") or [])]


def encrypt(password: str) -> str:
    """Encrypt with the current app's SECRET_KEY."""
    return encrypt_with(current_app.config["SECRET_KEY"], password)


def decrypt(token: str) -> str:
    """Decrypt with the current app's keys, or give an :class:`UnreadablePassword`."""
    try:
        return decrypt_with(_current_keys(), token)
    except (InvalidToken, ValueError):
        return UnreadablePassword(token)


class EncryptedText(TypeDecorator[str]):
    """A text column whose values are encrypted on the way in and decrypted on the way out."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, UnreadablePassword):
            return value.ciphertext
        return encrypt(str(value))

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return decrypt(str(value))
