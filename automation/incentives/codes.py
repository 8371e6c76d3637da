"""Voucher codes: 12 symbols from Crockford's base-32 alphabet, made by ``secrets``.

Twelve symbols of five bits are 60 bits of entropy, so guessing one live code
among a million takes about 10^12 tries; validation is rate-limited besides.
The alphabet leaves out I, L, O and U, and input is normalised so that what a
customer reads off a receipt (``o`` for zero, ``l`` for one, spaces, hyphens)
still matches.
"""

from __future__ import annotations

import math
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 12
GROUP = 4
BITS_PER_SYMBOL = int(math.log2(len(ALPHABET)))
ENTROPY_BITS = LENGTH * BITS_PER_SYMBOL

# 256 is a multiple of 32, so the low five bits of a random byte are a uniform symbol;
# translating whole buffers keeps bulk generation in C.
_BYTE_TO_SYMBOL = bytes(ALPHABET.encode()[b % len(ALPHABET)] for b in range(256))
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_DROP = str.maketrans("", "", " -_\t\n\r.")
_VALID = frozenset(ALPHABET)


def generate_code() -> str:
    """Return one new code, normalised (no hyphens)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def generate_codes(count: int) -> list[str]:
    """Return ``count`` new codes in one call to the OS random source (bulk issuance)."""
    if count <= 0:
        return []
    text = secrets.token_bytes(count * LENGTH).translate(_BYTE_TO_SYMBOL).decode("ascii")
    return [text[i : i + LENGTH] for i in range(0, count * LENGTH, LENGTH)]


def normalise(value: str) -> str:
    """Bring typed input to the stored form: upper case, look-alikes mapped, separators gone."""
    return (value or "").upper().translate(_DROP).translate(_LOOKALIKES)


def is_well_formed(code: str) -> bool:
    """Whether a normalised code could have been issued by us (cheap check before a query)."""
    return len(code) == LENGTH and all(c in _VALID for c in code)


def format_code(code: str) -> str:
    """Group a code for reading: ``XXXX-XXXX-XXXX``."""
    code = normalise(code)
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))
