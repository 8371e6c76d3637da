"""A real server for browser tests: the app on 127.0.0.1 and a free port, in a thread."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO / "helpdesk" / "static" / "vendor"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class LiveServer:
    url: str
    app: Any
    seed: dict[str, Any]


def chromium_path() -> str:
    return os.environ.get("RAPPORT_CHROMIUM", "/usr/bin/chromium")


@contextmanager
def serve(
    seed: Callable[[], dict[str, Any]],
    *,
    channel: str,
    config: dict[str, Any] | None = None,
) -> Iterator[LiveServer]:
    """Serve a fresh app on a free port in a thread, seeded, with ``channel`` recorded."""
    if not Path(chromium_path()).exists():
        pytest.skip(
            f"no Chromium at {chromium_path()}; install Debian chromium or set RAPPORT_CHROMIUM"
        )
    from werkzeug.serving import make_server

    from channels import base as channel_base
    from helpdesk import create_app
    from helpdesk.extensions import db
    from tests.factories import RecordingChannel
    from tests.servers import free_port

    tmp = Path(tempfile.mkdtemp(prefix="rapport-web-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "web-test-secret",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'web.db'}",
            "INSTANCE_PATH": str(tmp / "instance"),
            "RAPPORT_ATTACHMENT_DIR": str(tmp / "attachments"),
            "RAPPORT_JOBS_IMMEDIATE": True,
            "RAPPORT_EMBEDDED_WORKER": False,
            "RAPPORT_PUBLIC_URL": url,
            "RATELIMIT_ENABLED": False,
            **(config or {}),
        }
    )
    with app.app_context():
        db.create_all()
        seeded = seed()
        db.session.remove()
    # Deliver replies to a recorder instead of a real provider.
    previous = channel_base.registered_channels().get(channel)
    channel_base.register(RecordingChannel(channel))
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(url, app, seeded)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        if previous is not None:
            channel_base.register(previous)
        else:
            channel_base._registry.pop(channel, None)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def live_server() -> Iterator[LiveServer]:
    if not (VENDOR / "socket.io.min.js").exists() or not (VENDOR / "htmx.min.js").exists():
        pytest.skip("helpdesk/static/vendor is missing; run `npm ci && npm run build` first")
    with serve(_seed, channel="email") as server:
        yield server


def _seed() -> dict[str, Any]:
    from helpdesk.actors import Actor
    from helpdesk.extensions import db
    from helpdesk.ingest import ingest_message
    from helpdesk.models import CannedResponse, Role
    from helpdesk.operations.messages import add_note
    from helpdesk.operations.tickets import set_tags
    from helpdesk.operations.users import create_team, create_user
    from tests.factories import inbound

    system = Actor.system("seed")
    alice = create_user(
        actor=system, email="alice@example.com", name="Alice Agent", password="password123"
    )
    bob = create_user(
        actor=system,
        email="bob@example.com",
        name="Bob Builder",
        password="password123",
        role=Role.AGENT,
    )
    create_team(actor=system, name="Support", members=[alice, bob])
    first = ingest_message(
        inbound(
            "Hello, I ordered a kettle two weeks ago and it has not arrived.\n\nOrder 1042.",
            sender="ada@example.net",
            name="Ada Lovelace",
            subject="Where is my kettle?",
        )
    )
    ticket = first.ticket
    set_tags(ticket, ["shipping", "vip"], actor=system)
    add_note(
        ticket, actor=Actor.for_user(bob), author=bob, body="@alice the courier says it was lost."
    )
    ingest_message(
        inbound(
            "Can I change my address?",
            sender="نور@example.net",
            name="نور الهدى",
            subject="تغيير العنوان",
        )
    )
    ingest_message(
        inbound(
            "Refund please",
            sender="grace@example.net",
            name="Grace Hopper",
            subject="Refund for order 1001",
            channel="sms",
        )
    )
    db.session.add(
        CannedResponse(
            title="Apology",
            shortcut="sorry",
            body="Hi {{ contact.first_name }}, sorry about the wait.",
        )
    )
    db.session.commit()
    return {
        "ticket_id": ticket.id,
        "alice": alice.email,
        "bob": bob.email,
        "password": "password123",
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
