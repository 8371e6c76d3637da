"""Rapport: an omnichannel help desk. ``create_app`` builds the Flask application."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask, request

from helpdesk.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: config from the environment (or ``test_config``), extensions, blueprints."""
    instance_path = (test_config or {}).get("INSTANCE_PATH") or os.environ.get(
        "RAPPORT_INSTANCE_PATH", str(ROOT / "instance")
    )
    app = Flask(
        __name__,
        instance_path=str(instance_path),
        template_folder=str(ROOT / "templates"),
        static_folder="static",
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(load_config(app.instance_path))
    if test_config:
        app.config.from_mapping(test_config)

    logging.basicConfig(level=os.environ.get("RAPPORT_LOG_LEVEL", "INFO"))
    _init_extensions(app)
    _register_blueprints(app)
    _register_channels()

    import automation
    from channels.email import init_app as init_email

    init_email(app)
    from helpdesk.portal import init_app as init_portal

    init_portal(app)
    automation.init_app(app)

    from helpdesk import cli, jobs

    cli.register(app)
    jobs.bind_app(app)
    if app.config["RAPPORT_EMBEDDED_WORKER"] and not app.config.get("TESTING"):
        _start_worker_when_serving(app)
    return app


def _start_worker_when_serving(app: Flask) -> None:
    """Run job consumer threads in the serving process, not in one-off CLI commands.

    ``flask run`` loads the app inside its click command, so we start at once
    (IMAP polling and retries must not wait for a first visitor); under
    gunicorn the first request starts them.
    """
    import click

    from helpdesk import jobs

    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        reloader_parent = app.debug and os.environ.get("WERKZEUG_RUN_MAIN") != "true"
        if ctx.info_name == "run" and not reloader_parent:
            jobs.start_embedded_worker(app)
        return

    @app.before_request
    def _start_once() -> None:
        jobs.start_embedded_worker(app)


def _init_extensions(app: Flask) -> None:
    from helpdesk.extensions import babel, csrf, db, limiter, login_manager, migrate, socketio

    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    csrf.init_app(app)
    babel.init_app(app, locale_selector=_select_locale)
    from flask_babel import get_locale

    app.jinja_env.globals["get_locale"] = get_locale
    limiter.init_app(app)
    socketio.init_app(
        app,
        async_mode="threading",
        message_queue=app.config["REDIS_URL"],
        cors_allowed_origins=[app.config["RAPPORT_PUBLIC_URL"]],
        manage_session=False,
    )

    _install_sqlite_tuning()
    with app.app_context():
        for engine in db.engines.values():
            _plain_savepoints(engine.dialect)

    from helpdesk.models import User

    @login_manager.user_loader
    def _load_user(user_id: str) -> User | None:
        user = db.session.get(User, int(user_id))
        return user if user is not None and user.is_active_user else None


_sqlite_tuned = False


def _install_sqlite_tuning() -> None:
    """WAL, foreign keys, and transactions that take the write lock up front on SQLite.

    pysqlite's own transaction handling begins lazily and upgrades a read lock
    to a write lock mid-transaction, which SQLite refuses at once ("database is
    locked") when another writer got there first. ``BEGIN IMMEDIATE`` waits on
    busy_timeout instead, and makes savepoints behave.
    """
    global _sqlite_tuned
    if _sqlite_tuned:
        return
    _sqlite_tuned = True
    from sqlalchemy import event as sa_event
    from sqlalchemy.engine import Engine

    @sa_event.listens_for(Engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    @sa_event.listens_for(Engine, "begin")
    def _sqlite_begin(conn: Any) -> None:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def _plain_savepoints(dialect: Any) -> None:
    """Send SAVEPOINT statements as plain SQL instead of compiling them each time.

    SQLAlchemy's savepoint clause has no cache key, so every savepoint and its
    release were compiled afresh: about a tenth of the CPU time of ingesting
    one message, which takes a savepoint for its duplicate check. The names are
    SQLAlchemy's own (``sa_savepoint_N``), so nothing needs quoting.
    """

    def do_savepoint(connection: Any, name: str) -> None:
        connection.exec_driver_sql(f"SAVEPOINT {name}")

    def do_release_savepoint(connection: Any, name: str) -> None:
        connection.exec_driver_sql(f"RELEASE SAVEPOINT {name}")

    def do_rollback_to_savepoint(connection: Any, name: str) -> None:
        connection.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {name}")

    dialect.do_savepoint = do_savepoint
    dialect.do_release_savepoint = do_release_savepoint
    dialect.do_rollback_to_savepoint = do_rollback_to_savepoint


def _select_locale() -> str | None:
    from flask import current_app
    from flask_login import current_user

    supported = current_app.config["RAPPORT_LOCALES"]
    if getattr(current_user, "is_authenticated", False) and current_user.locale in supported:
        return str(current_user.locale)
    asked = request.args.get("lang")
    if asked in supported:
        return str(asked)
    return request.accept_languages.best_match(supported)


def _register_blueprints(app: Flask) -> None:
    from helpdesk.admin.views import bp as admin_bp
    from helpdesk.api import bp as api_bp
    from helpdesk.attachments_views import bp as attachments_bp
    from helpdesk.auth.access import install_default_deny
    from helpdesk.auth.views import bp as auth_bp
    from helpdesk.crm.views import bp as crm_bp
    from helpdesk.errors import register_error_handlers
    from helpdesk.extensions import csrf
    from helpdesk.inbox.views import bp as inbox_bp

    for blueprint in (auth_bp, inbox_bp, crm_bp, admin_bp, api_bp, attachments_bp):
        app.register_blueprint(blueprint)
    csrf.exempt(api_bp)  # token-authenticated, no cookies
    install_default_deny(app)
    register_error_handlers(app)
    import helpdesk.delivery
    import helpdesk.realtime  # (connects the live-update listeners)

    helpdesk.realtime.init_presence(app)


def _register_channels() -> None:
    import channels.api  # noqa: F401
