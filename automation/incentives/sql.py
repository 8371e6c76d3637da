"""Small SQL helpers that read the same on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Delete, Table, Update
from sqlalchemy.dialects import postgresql, sqlite

from helpdesk import rows
from helpdesk.extensions import db


def dialect() -> str:
    return str(db.session.get_bind().dialect.name)


def insert_or_ignore(table: Table, **values: Any) -> None:
    """Insert a row unless its primary or unique key exists already (no error, no race)."""
    insert = postgresql.insert if dialect() == "postgresql" else sqlite.insert
    db.session.execute(insert(table).values(**values).on_conflict_do_nothing())


def upsert_insert(table: Table) -> Any:
    """The dialect's ``INSERT … ON CONFLICT`` builder for ``table``."""
    insert = postgresql.insert if dialect() == "postgresql" else sqlite.insert
    return insert(table)


def changed_rows(statement: Update | Delete) -> int:
    """Run an UPDATE or DELETE and return how many rows it changed.

    Objects already in the session are left as they were (``synchronize_session=False``):
    refresh what is read again afterwards.
    """
    return rows.changed_rows(statement.execution_options(synchronize_session=False))
