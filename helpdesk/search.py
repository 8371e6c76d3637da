"""Full-text search over tickets (subjects and message texts) and contacts.

SQLite uses FTS5 tables kept in step by triggers, so every writer (ingest,
replies, merges, bulk updates) is covered without knowing about search:

- ``ticket_search`` and ``message_search``: external-content tables over
  ``tickets.subject`` and ``messages.text``;
- ``contact_search``: a small table of each contact's name and identity values.

PostgreSQL uses GIN indexes on ``to_tsvector('simple', ...)`` expressions and
``websearch_to_tsquery``. Both use no stemming and no stop words ('simple',
``unicode61``) because our customers write English, Greek, Hungarian and Arabic.

Query syntax, the same on both: words must all match (``refund parcel``),
``"quoted words"`` match as a phrase, ``word*`` matches a prefix, ``-word``
excludes, and ``#1234`` finds ticket 1234. SQLite also folds Latin diacritics
(``arvizturo`` finds ``árvíztűrő``); PostgreSQL's 'simple' configuration does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, or_, select, text
from sqlalchemy.engine import Connection

from helpdesk.extensions import db
from helpdesk.models import Contact, ContactIdentity

__all__ = [
    "POSTGRESQL_DDL",
    "SQLITE_DDL",
    "install_search",
    "parse_query",
    "remove_search",
    "search_contacts",
    "search_tickets",
]

_TOKENIZE = "unicode61 remove_diacritics 2"

#: Creates the FTS5 tables and triggers (idempotent). The Alembic migration runs these.
SQLITE_DDL: tuple[str, ...] = (
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS message_search USING fts5(
        text, content='messages', content_rowid='id', tokenize='{_TOKENIZE}')""",
    """CREATE TRIGGER IF NOT EXISTS message_search_ai AFTER INSERT ON messages BEGIN
        INSERT INTO message_search(rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS message_search_ad AFTER DELETE ON messages BEGIN
        INSERT INTO message_search(message_search, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS message_search_au AFTER UPDATE OF text ON messages BEGIN
        INSERT INTO message_search(message_search, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO message_search(rowid, text) VALUES (new.id, new.text);
    END""",
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS ticket_search USING fts5(
        subject, content='tickets', content_rowid='id', tokenize='{_TOKENIZE}')""",
    """CREATE TRIGGER IF NOT EXISTS ticket_search_ai AFTER INSERT ON tickets BEGIN
        INSERT INTO ticket_search(rowid, subject) VALUES (new.id, new.subject);
    END""",
    """CREATE TRIGGER IF NOT EXISTS ticket_search_ad AFTER DELETE ON tickets BEGIN
        INSERT INTO ticket_search(ticket_search, rowid, subject)
        VALUES ('delete', old.id, old.subject);
    END""",
    """CREATE TRIGGER IF NOT EXISTS ticket_search_au AFTER UPDATE OF subject ON tickets BEGIN
        INSERT INTO ticket_search(ticket_search, rowid, subject)
        VALUES ('delete', old.id, old.subject);
        INSERT INTO ticket_search(rowid, subject) VALUES (new.id, new.subject);
    END""",
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS contact_search USING fts5(
        name, identities, tokenize='{_TOKENIZE}')""",
    """CREATE TRIGGER IF NOT EXISTS contact_search_ai AFTER INSERT ON contacts BEGIN
        INSERT INTO contact_search(rowid, name, identities) VALUES (new.id, new.name, '');
    END""",
    """CREATE TRIGGER IF NOT EXISTS contact_search_au AFTER UPDATE OF name ON contacts BEGIN
        UPDATE contact_search SET name = new.name WHERE rowid = new.id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS contact_search_ad AFTER DELETE ON contacts BEGIN
        DELETE FROM contact_search WHERE rowid = old.id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS contact_identity_search_ai AFTER INSERT ON contact_identities
    BEGIN
        UPDATE contact_search SET identities = (
            SELECT group_concat(value, ' ') FROM contact_identities
             WHERE contact_id = new.contact_id
        ) WHERE rowid = new.contact_id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS contact_identity_search_au AFTER UPDATE ON contact_identities
    BEGIN
        UPDATE contact_search SET identities = coalesce((
            SELECT group_concat(value, ' ') FROM contact_identities
             WHERE contact_id = old.contact_id
        ), '') WHERE rowid = old.contact_id;
        UPDATE contact_search SET identities = (
            SELECT group_concat(value, ' ') FROM contact_identities
             WHERE contact_id = new.contact_id
        ) WHERE rowid = new.contact_id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS contact_identity_search_ad AFTER DELETE ON contact_identities
    BEGIN
        UPDATE contact_search SET identities = coalesce((
            SELECT group_concat(value, ' ') FROM contact_identities
             WHERE contact_id = old.contact_id
        ), '') WHERE rowid = old.contact_id;
    END""",
)

#: Fills the SQLite tables from existing rows; run once after creating them.
SQLITE_REBUILD: tuple[str, ...] = (
    "INSERT INTO message_search(message_search) VALUES ('rebuild')",
    "INSERT INTO ticket_search(ticket_search) VALUES ('rebuild')",
    "DELETE FROM contact_search",
    """INSERT INTO contact_search(rowid, name, identities)
       SELECT c.id, c.name, coalesce((SELECT group_concat(i.value, ' ')
                                      FROM contact_identities i WHERE i.contact_id = c.id), '')
       FROM contacts c""",
)

SQLITE_DROP: tuple[str, ...] = (
    *(
        f"DROP TRIGGER IF EXISTS {name}"
        for name in (
            "message_search_ai",
            "message_search_ad",
            "message_search_au",
            "ticket_search_ai",
            "ticket_search_ad",
            "ticket_search_au",
            "contact_search_ai",
            "contact_search_au",
            "contact_search_ad",
            "contact_identity_search_ai",
            "contact_identity_search_au",
            "contact_identity_search_ad",
        )
    ),
    "DROP TABLE IF EXISTS message_search",
    "DROP TABLE IF EXISTS ticket_search",
    "DROP TABLE IF EXISTS contact_search",
)

# Messages can be long (quoted mail history); a tsvector holds at most 1 MB, so
# index the first 100,000 characters. Queries must repeat these exact expressions.
_PG_MESSAGE_VECTOR = "to_tsvector('simple'::regconfig, left(text, 100000))"
_PG_SUBJECT_VECTOR = "to_tsvector('simple'::regconfig, subject)"

#: The GIN expression indexes (idempotent). The Alembic migration runs these.
POSTGRESQL_DDL: tuple[str, ...] = (
    "CREATE INDEX IF NOT EXISTS ix_messages_text_search"
    f" ON messages USING gin ({_PG_MESSAGE_VECTOR})",
    "CREATE INDEX IF NOT EXISTS ix_tickets_subject_search"
    f" ON tickets USING gin ({_PG_SUBJECT_VECTOR})",
)

POSTGRESQL_DROP: tuple[str, ...] = (
    "DROP INDEX IF EXISTS ix_messages_text_search",
    "DROP INDEX IF EXISTS ix_tickets_subject_search",
)


def is_search_table(name: str | None) -> bool:
    """True for what search creates outside the models: FTS5 tables, their shadow tables,
    and the PostgreSQL full-text indexes; migrations leave these to ``install_search``."""
    if not name:
        return False
    if name in {"ix_messages_text_search", "ix_tickets_subject_search"}:
        return True
    return "_search" in name and name.split("_search", 1)[0] in {"message", "ticket", "contact"}


def install_search(connection: Connection) -> None:
    """Create the search tables, triggers or indexes for this database; safe to repeat."""
    if connection.dialect.name == "sqlite":
        existed = connection.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'message_search'"
        ).first()
        for statement in SQLITE_DDL:
            connection.exec_driver_sql(statement)
        if existed is None:
            for statement in SQLITE_REBUILD:
                connection.exec_driver_sql(statement)
    elif connection.dialect.name == "postgresql":
        for statement in POSTGRESQL_DDL:
            connection.exec_driver_sql(statement)


def remove_search(connection: Connection) -> None:
    """Drop what ``install_search`` created (for a migration's downgrade)."""
    statements = SQLITE_DROP if connection.dialect.name == "sqlite" else POSTGRESQL_DROP
    for statement in statements:
        connection.exec_driver_sql(statement)


# ------------------------------------------------------------------ queries


@dataclass(frozen=True, slots=True)
class Term:
    """One part of a query: a word or a quoted phrase, maybe a prefix, maybe excluded."""

    text: str
    prefix: bool = False
    negated: bool = False


_TOKEN = re.compile(r'(-?)"([^"]*)"?(\*?)|(\S+)')
_WORD = re.compile(r"\w+")
_TICKET_NUMBER = re.compile(r"^#(\d{1,18})$")
_PHONE_LIKE = re.compile(r"^\+?[\d\s().\-]{4,}$")


def parse_query(query: str) -> list[Term]:
    """Split a search box's text into terms (words, "phrases", prefix*, -excluded)."""
    terms = []
    for match in _TOKEN.finditer(query or ""):
        if match.group(4) is not None:
            raw = match.group(4)
            negated = raw.startswith("-") and len(raw) > 1
            raw = raw[1:] if negated else raw
            prefix = raw.endswith("*")
            raw = raw.rstrip("*")
        else:
            negated = bool(match.group(1))
            raw = match.group(2)
            prefix = bool(match.group(3))
        words = _WORD.findall(raw)
        if words:
            terms.append(Term(" ".join(words), prefix=prefix, negated=negated))
    return terms


def _fts5_query(terms: list[Term]) -> str | None:
    def quoted(term: Term) -> str:
        return '"' + term.text.replace('"', '""') + '"' + (" *" if term.prefix else "")

    wanted = [quoted(t) for t in terms if not t.negated]
    if not wanted:
        return None
    query = "(" + " AND ".join(wanted) + ")"
    for term in terms:
        if term.negated:
            query += " NOT " + quoted(term)
    return query


def _pg_tsquery(terms: list[Term], params: dict[str, Any]) -> str | None:
    """A tsquery expression: websearch syntax for words and phrases, to_tsquery for prefixes."""
    if not any(not t.negated for t in terms):
        return None
    parts = []
    plain = [t for t in terms if not t.prefix]
    if plain:
        # Every term quoted, so words like "or" stay words and never become operators.
        params["ws"] = " ".join(("-" if t.negated else "") + f'"{t.text}"' for t in plain)
        parts.append("websearch_to_tsquery('simple'::regconfig, :ws)")
    for index, term in enumerate(t for t in terms if t.prefix):
        # \w+ words carry no quotes or backslashes, so quoting them as lexemes is safe.
        words = term.text.split()
        lexemes = " <-> ".join(f"'{w}'" for w in words[:-1]) + (" <-> " if len(words) > 1 else "")
        lexemes += f"'{words[-1]}':*"
        params[f"p{index}"] = f"!({lexemes})" if term.negated else lexemes
        parts.append(f"to_tsquery('simple'::regconfig, :p{index})")
    return "(" + " && ".join(parts) + ")"


def _ticket_by_number(query: str) -> list[int] | None:
    match = _TICKET_NUMBER.match(query.strip())
    if match is None:
        return None
    from helpdesk.operations.tickets import get_ticket

    number = int(match.group(1))
    ticket = get_ticket(number) if number < 2**63 else None
    return [ticket.id] if ticket is not None else []


def search_tickets(query: str, *, limit: int = 50) -> list[int]:
    """Return ids of tickets whose subject or a message matches ``query``, best first."""
    by_number = _ticket_by_number(query)
    if by_number is not None:
        return by_number
    terms = parse_query(query)
    limit = max(1, min(limit, 500))
    if db.session.get_bind().dialect.name == "postgresql":
        params: dict[str, Any] = {"limit": limit}
        tsquery = _pg_tsquery(terms, params)
        if tsquery is None:
            return []
        sql = f"""
            SELECT ticket_id FROM (
                SELECT t.id AS ticket_id, ts_rank({_PG_SUBJECT_VECTOR}, {tsquery}) * 2 AS score
                  FROM tickets t
                 WHERE {_PG_SUBJECT_VECTOR} @@ {tsquery} AND t.merged_into_id IS NULL
                UNION ALL
                SELECT m.ticket_id, ts_rank({_PG_MESSAGE_VECTOR}, {tsquery})
                  FROM messages m
                 WHERE {_PG_MESSAGE_VECTOR} @@ {tsquery}
            ) hits
            GROUP BY ticket_id ORDER BY max(score) DESC, ticket_id DESC LIMIT :limit
        """
        return list(db.session.scalars(text(sql), params))
    match = _fts5_query(terms)
    if match is None:
        return []
    sql = """
        SELECT ticket_id FROM (
            SELECT t.id AS ticket_id, bm25(ticket_search) * 2.0 AS score
              FROM ticket_search JOIN tickets t ON t.id = ticket_search.rowid
             WHERE ticket_search MATCH :match AND t.merged_into_id IS NULL
            UNION ALL
            SELECT m.ticket_id, bm25(message_search)
              FROM message_search JOIN messages m ON m.id = message_search.rowid
             WHERE message_search MATCH :match
        )
        GROUP BY ticket_id ORDER BY min(score), ticket_id DESC LIMIT :limit
    """
    return list(db.session.scalars(text(sql), {"match": match, "limit": limit}))


def search_contacts(query: str, limit: int = 20) -> list[int]:
    """Return ids of contacts whose name or an identity (email, phone…) matches, best first.

    Every word must match the start of a word in the name or an identity; a query
    that looks like a phone number is compared by its digits.
    """
    query = (query or "").strip()
    limit = max(1, min(limit, 500))
    if _PHONE_LIKE.match(query) and sum(c.isdigit() for c in query) >= 4:
        terms = [Term(re.sub(r"\D", "", query), prefix=True)]
    else:
        terms = [
            Term(word.lstrip("-").strip('"*'), prefix=True, negated=word.startswith("-"))
            for word in query.split()
            if _WORD.search(word)
        ]
    if not any(not t.negated for t in terms):
        return []
    if db.session.get_bind().dialect.name == "postgresql":
        return _search_contacts_pg(terms, limit)
    sql = """
        SELECT c.id FROM contact_search JOIN contacts c ON c.id = contact_search.rowid
         WHERE contact_search MATCH :match AND c.merged_into_id IS NULL
         ORDER BY bm25(contact_search), c.id DESC LIMIT :limit
    """
    return list(db.session.scalars(text(sql), {"match": _fts5_query(terms), "limit": limit}))


def _search_contacts_pg(terms: list[Term], limit: int) -> list[int]:
    def matches(term: Term) -> Any:
        pattern = "%" + _like_escape(term.text) + "%"
        return or_(
            Contact.name.ilike(pattern, escape="\\"),
            exists().where(
                ContactIdentity.contact_id == Contact.id,
                ContactIdentity.value.ilike(pattern, escape="\\"),
            ),
        )

    conditions = [matches(t) if not t.negated else ~matches(t) for t in terms]
    first = next(t for t in terms if not t.negated)
    starts = Contact.name.ilike(_like_escape(first.text) + "%", escape="\\")
    return list(
        db.session.scalars(
            select(Contact.id)
            .where(Contact.merged_into_id.is_(None), and_(*conditions))
            .order_by(starts.desc(), Contact.id.desc())
            .limit(limit)
        )
    )


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
