"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text

from helpdesk.extensions import db
from helpdesk.search import is_search_table


@pytest.fixture
def empty_database(database_url, tmp_path):
    """A database with nothing in it: a new SQLite file, or a new PostgreSQL schema."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS rapport_migrations"))
        conn.execute(text("CREATE DATABASE rapport_migrations"))
    admin.dispose()
    yield database_url.rsplit("/", 1)[0] + "/rapport_migrations"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS rapport_migrations WITH (FORCE)"))
    admin.dispose()


@pytest.fixture
def migrated_app(empty_database):
    from helpdesk import create_app

    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "x",
            "SQLALCHEMY_DATABASE_URI": empty_database,
            "RAPPORT_JOBS_IMMEDIATE": True,
            "RAPPORT_EMBEDDED_WORKER": False,
        }
    )
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def test_upgrade_from_empty_matches_the_models(migrated_app):
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


def test_upgrade_installs_full_text_search(migrated_app):
    from helpdesk.search import search_tickets

    upgrade()
    assert search_tickets("anything") == []


def test_downgrade_to_base_removes_every_table(migrated_app):
    upgrade()
    downgrade(revision="base")
    remaining = set(inspect(db.engine).get_table_names()) - {"alembic_version"}
    assert remaining == set()
