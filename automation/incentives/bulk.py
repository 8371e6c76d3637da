"""Bulk voucher rows: many codes under one policy, inserted by the database in chunks.

Codes are unique by the ``vouchers.code`` index, never by a read beforehand. Each
chunk of codes travels as one text parameter and the database builds the rows
(``json_each`` on SQLite, ``string_to_array`` on PostgreSQL), so Python only draws
random bytes.

On PostgreSQL ``INSERT … ON CONFLICT`` is a speculative insertion: a probe before
each row and a second heap write to confirm it, which costs more than a third of the
time per row. A collision among 60-bit codes is so rare (about 10^-7 for 200,000
new codes among a million) that the fast path inserts plainly inside a savepoint;
if the unique index does refuse a code (a collision, or a concurrent batch that
drew the same one), the savepoint is rolled back and the whole request is made
again by the careful path, which skips taken codes and draws replacements. Either
way the caller gets exactly ``count`` new rows and never an error for a collision.

What PostgreSQL still spends per row is mostly the four foreign-key checks on
``vouchers`` (about half of the server time; measured by dropping them on a scratch
database): one per row for the policy, and one each for contact, ticket and grant
even though bulk codes leave those NULL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.exc import IntegrityError

from . import codes

log = logging.getLogger(__name__)

#: Rows per statement. On PostgreSQL larger chunks only cost memory; SQLite's
#: ``json_each`` over 5,000 codes is where it stops getting faster.
CHUNK = {"postgresql": 20_000, "sqlite": 5_000}


def insert_codes(
    connection: Connection,
    table: Table,
    shared: Mapping[str, Any],
    count: int,
    *,
    chunk: int | None = None,
) -> int:
    """Insert ``count`` rows with new unique codes and the ``shared`` column values;
    return how many were inserted (always ``count``)."""
    if count <= 0:
        return 0
    dialect = connection.dialect
    # Bind processing (datetimes, enums, decimals) is done once for the values every row shares.
    values = {name: value for name, value in shared.items() if value is not None}
    constants = []
    for name, value in values.items():
        processor = table.c[name].type.bind_processor(dialect)
        constants.append(processor(value) if processor else value)
    columns = ", ".join(["code", *values])
    if dialect.name == "postgresql":
        size = chunk or CHUNK["postgresql"]
        marks = ", ".join(["%s"] * len(values))
        insert_sql = (
            f"INSERT INTO {table.name} ({columns}) SELECT c, {marks} "
            "FROM unnest(string_to_array(%s, ',')) AS t(c)"
        )
        try:
            with connection.begin_nested():
                return _insert_plainly(connection, insert_sql, constants, count, size)
        except IntegrityError as error:
            log.info("bulk codes: the unique index refused a code (%s); retrying carefully", error)
        return _insert_skipping_taken(
            connection,
            exists_sql=f"SELECT code FROM {table.name} WHERE code = ANY(string_to_array(%s, ','))",
            insert_sql=insert_sql + " ON CONFLICT (code) DO NOTHING",
            constants=constants,
            pack=",".join,
            count=count,
            size=size,
        )
    marks = ", ".join(["?"] * len(values))
    return _insert_skipping_taken(
        connection,
        exists_sql=f"SELECT code FROM {table.name} WHERE code IN (SELECT value FROM json_each(?))",
        # "WHERE true" keeps SQLite from reading ON CONFLICT as a join constraint.
        insert_sql=f"INSERT INTO {table.name} ({columns}) SELECT value, {marks} FROM json_each(?) "
        "WHERE true ON CONFLICT (code) DO NOTHING",
        constants=constants,
        pack=json.dumps,
        count=count,
        size=chunk or CHUNK["sqlite"],
    )


def _fresh(size: int) -> list[str]:
    """``size`` new codes, or fewer if the draw repeated one (dropped, made up later)."""
    return list(dict.fromkeys(codes.generate_codes(size)))


def _insert_plainly(
    connection: Connection, insert_sql: str, constants: list[Any], count: int, size: int
) -> int:
    """Insert without conflict handling; a taken code raises ``IntegrityError``."""
    made = 0
    while made < count:
        fresh = _fresh(min(size, count - made))
        connection.exec_driver_sql(insert_sql, (*constants, ",".join(fresh)))
        made += len(fresh)
    return made


def _insert_skipping_taken(
    connection: Connection,
    *,
    exists_sql: str,
    insert_sql: str,
    constants: list[Any],
    pack: Callable[[list[str]], Any],
    count: int,
    size: int,
) -> int:
    """Per chunk: one query for codes that exist already, then an insert that skips
    conflicts (a concurrent batch may take a code in between); what was skipped is
    made up in the next chunk."""
    made = 0
    while made < count:
        fresh = _fresh(min(size, count - made))
        taken = {row[0] for row in connection.exec_driver_sql(exists_sql, (pack(fresh),))}
        if taken:
            fresh = [code for code in fresh if code not in taken]
        inserted = connection.exec_driver_sql(insert_sql, (*constants, pack(fresh))).rowcount
        made += max(inserted, 0)
    return made
