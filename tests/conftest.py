"""Shared fixtures: an app per test on SQLite (or PostgreSQL with --db=postgresql), factories."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Before anything imports helpdesk.jobs: keep Huey's files out of the work tree.
_TMP = Path(tempfile.mkdtemp(prefix="rapport-tests-"))
os.environ.setdefault("RAPPORT_HUEY_PATH", str(_TMP / "jobs.db"))
os.environ.pop("REDIS_URL", None)
os.environ.pop("DATABASE_URL", None)

from channels.base import IdentityKind, SenderIdentity, register  # noqa: E402
from tests.factories import RecordingChannel  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CORPORA = SHARED / "corpora"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        default=os.environ.get("RAPPORT_TEST_DB", "sqlite"),
        choices=["sqlite", "postgresql"],
        help="database the integration tests run on (PostgreSQL is started by the session)",
    )


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.config.getoption("--db") == "postgresql":
        from tests.servers import postgres_available, start_postgres

        if not postgres_available():
            pytest.fail(
                "--db=postgresql needs the Debian postgresql package (make test installs it)"
            )
        server = start_postgres()
        try:
            yield server.url
        finally:
            server.stop()
    else:
        yield f"sqlite:///{_TMP / 'test.db'}"


@pytest.fixture(scope="session")
def _schema(database_url: str) -> Iterator[None]:
    from helpdesk import create_app
    from helpdesk.extensions import db

    app = create_app(_test_config(database_url))
    with app.app_context():
        db.drop_all()
        db.create_all()
        install_search_structures(db)
    yield
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _test_config(database_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "INSTANCE_PATH": str(_TMP / "instance"),
        "RAPPORT_ATTACHMENT_DIR": str(_TMP / "attachments"),
        "RAPPORT_JOBS_IMMEDIATE": True,
        "RAPPORT_EMBEDDED_WORKER": False,
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "RAPPORT_PASSWORD_HASH": "pbkdf2:sha256:1000",
        **extra,
    }


@pytest.fixture
def app_config() -> dict[str, Any]:
    """Override in a test module to change settings for its app."""
    return {}


@pytest.fixture
def app(_schema: None, database_url: str, app_config: dict[str, Any]) -> Iterator[Any]:
    from helpdesk import create_app
    from helpdesk.extensions import db

    application = create_app(_test_config(database_url, **app_config))

    @application.before_request
    def _forget_cached_user() -> None:
        # The test's app context outlives each request; Flask-Login caches the
        # signed-in user on g, so without this a second client would act as the first.
        from flask import g

        g.pop("_login_user", None)

    with application.app_context():
        yield application
        db.session.remove()
        _empty_tables(db)
        db.engine.dispose()


@pytest.fixture
def empty_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it: a new SQLite file, or a new PostgreSQL database."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    from sqlalchemy import create_engine, text

    def run(*statements: str) -> None:
        admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
        admin.dispose()

    run("DROP DATABASE IF EXISTS rapport_empty", "CREATE DATABASE rapport_empty")
    yield database_url.rsplit("/", 1)[0] + "/rapport_empty"
    run("DROP DATABASE IF EXISTS rapport_empty WITH (FORCE)")


@pytest.fixture
def unmigrated_app(empty_database: str) -> Iterator[Any]:
    """An app on ``empty_database``, for tests that run the migrations themselves."""
    from helpdesk import create_app
    from helpdesk.extensions import db

    application = create_app(_test_config(empty_database))
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


def install_search_structures(db: Any) -> None:
    """What the migration adds beyond the models: full-text search tables and indexes."""
    from helpdesk.search import install_search

    with db.engine.begin() as conn:
        install_search(conn)


def _empty_tables(db: Any) -> None:
    from sqlalchemy import text

    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
            has_sequence = conn.execute(
                text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")
            ).first()
            if has_sequence:
                conn.execute(text("DELETE FROM sqlite_sequence"))


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def run_threads(app: Any) -> Callable[..., tuple[list[Any], list[Exception]]]:
    """Run ``work(i)`` for each i below ``n`` in its own thread, all released at once, each
    in its own app context and session; return what committed work returned, and errors."""
    import threading

    from helpdesk.extensions import db

    def run(n: int, work: Callable[[int], Any]) -> tuple[list[Any], list[Exception]]:
        db.session.commit()  # our own open transaction would hold SQLite's write lock
        barrier = threading.Barrier(n)
        results: list[Any] = []
        errors: list[Exception] = []

        def worker(i: int) -> None:
            with app.app_context():
                try:
                    barrier.wait(timeout=30)
                    result = work(i)
                    db.session.commit()
                    results.append(result)
                except Exception as exc:
                    errors.append(exc)
                    db.session.rollback()
                finally:
                    db.session.remove()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results, errors

    return run


# ---------------------------------------------------------------- factories


@pytest.fixture
def make_user(app: Any) -> Callable[..., Any]:
    from helpdesk.actors import Actor
    from helpdesk.extensions import db
    from helpdesk.models import Role
    from helpdesk.operations.users import create_user

    def make(
        role: Role | str = "agent",
        email: str | None = None,
        name: str = "",
        password: str = "password123",
        **kw: Any,
    ) -> Any:
        role = Role(role) if isinstance(role, str) else role
        email = email or f"{role.value}-{uuid.uuid4().hex[:6]}@example.test"
        user = create_user(
            actor=Actor.system("test"),
            email=email,
            name=name or email.split("@")[0].title(),
            password=password,
            role=role,
        )
        for key, value in kw.items():
            setattr(user, key, value)
        db.session.commit()
        return user

    return make


@pytest.fixture
def login(client: Any) -> Callable[..., Any]:
    def sign_in(user: Any, password: str = "password123") -> Any:
        response = client.post("/login", data={"email": user.email, "password": password})
        assert response.status_code == 302, response.data[:500]
        return response

    return sign_in


@pytest.fixture
def make_contact(app: Any) -> Callable[..., Any]:
    from helpdesk.actors import Actor
    from helpdesk.extensions import db
    from helpdesk.operations.contacts import create_contact

    def make(
        name: str = "Ada Lovelace", email: str | None = None, phone: str | None = None, **kw: Any
    ) -> Any:
        identities = []
        if email is not False:
            identities.append(
                SenderIdentity(IdentityKind.EMAIL, email or f"c{uuid.uuid4().hex[:8]}@example.test")
            )
        if phone:
            identities.append(SenderIdentity(IdentityKind.PHONE, phone))
        contact = create_contact(actor=Actor.system("test"), name=name, identities=identities, **kw)
        db.session.commit()
        return contact

    return make


@pytest.fixture
def make_ticket(app: Any, make_contact: Callable[..., Any]) -> Callable[..., Any]:
    from helpdesk.actors import Actor
    from helpdesk.extensions import db
    from helpdesk.operations.tickets import create_ticket

    def make(
        contact: Any = None, channel: str = "email", subject: str = "Where is my order?", **kw: Any
    ) -> Any:
        ticket = create_ticket(
            contact or make_contact(),
            actor=Actor.system("test"),
            channel=channel,
            subject=subject,
            **kw,
        )
        db.session.commit()
        return ticket

    return make


@pytest.fixture
def recording_channel() -> Iterator[RecordingChannel]:
    """Replace the email channel with a recorder for the test."""
    from channels import base

    previous = base.registered_channels().get("email")
    channel = RecordingChannel("email")
    register(channel)
    yield channel
    if previous is not None:
        register(previous)
    else:
        base._registry.pop("email", None)
