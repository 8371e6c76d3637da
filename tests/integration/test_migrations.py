"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from helpdesk.extensions import db
from helpdesk.search import is_search_table


def test_upgrade_from_empty_matches_the_models(unmigrated_app):
    upgrade()
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_name": lambda name, type_, _: (
                    not (type_ in ("table", "index") and is_search_table(name))
                ),
            },
        )
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_upgrade_installs_full_text_search(unmigrated_app):
    from helpdesk.search import search_tickets

    upgrade()
    assert search_tickets("anything") == []


def test_downgrade_to_base_removes_every_table(unmigrated_app):
    upgrade()
    downgrade(revision="base")
    remaining = set(inspect(db.engine).get_table_names()) - {"alembic_version"}
    assert remaining == set()
