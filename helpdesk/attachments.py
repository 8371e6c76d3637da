"""Attachment bytes on disk, addressed by SHA-256 so a file sent twice is stored once."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from pathlib import Path

from flask import current_app

_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)


def storage_root() -> Path:
    return Path(current_app.config["RAPPORT_ATTACHMENT_DIR"])


def path_for(sha256: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError("not a sha256 digest")
    return storage_root() / sha256[:2] / sha256[2:4] / sha256


def store_bytes(data: bytes) -> str:
    """Write ``data`` once under its digest (atomically) and return the digest."""
    digest = hashlib.sha256(data).hexdigest()
    target = path_for(digest)
    if target.exists():
        return digest
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return digest


def safe_filename(name: str, fallback: str = "attachment") -> str:
    """Keep letters of any script, digits, dots and dashes; never a path."""
    name = unicodedata.normalize("NFC", name or "").replace("/", "_").replace("\\", "_")
    name = _UNSAFE.sub("_", name).strip(" ._")
    return name[:200] or fallback
