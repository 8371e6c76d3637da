"""How many rows an UPDATE or DELETE changed: the answer conditional writes turn on."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Delete, Update

from helpdesk.extensions import db


def changed_rows(statement: Update | Delete) -> int:
    """Run ``statement`` on the session and return how many rows it changed.

    A claim ("set sending where still queued") or a once-only mark is a
    conditional write whose row count says whether this caller won.
    """
    return cast(CursorResult[Any], db.session.execute(statement)).rowcount
