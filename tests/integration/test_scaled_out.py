"""The distributed mode: jobs on Redis run by a separate huey_consumer process.

Same code, other configuration: the web side commits a reply and enqueues its
delivery on Redis; a consumer process on "another host" picks it up and sends it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.servers import redis_available, start_redis

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def redis_url():
    if not redis_available():
        pytest.fail("redis-server is missing; `make test` installs the Debian package")
    server = start_redis()
    yield server.url
    server.stop()


def _python(code: str, env: dict[str, str], timeout: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_with_redis_url_jobs_go_to_redis_and_a_separate_consumer_delivers_them(
    redis_url, database_url
):
    if not database_url.startswith("postgresql"):
        # SQLite works across processes too; a fresh file keeps this test independent of the session DB.
        database_url = f"sqlite:///{tempfile.mkdtemp(prefix='rscaled')}/scaled.db"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "RAPPORT_SECRET_KEY": "scaled-out-test",
        "RAPPORT_EMBEDDED_WORKER": "0",
        "RAPPORT_INSTANCE_PATH": tempfile.mkdtemp(prefix="rscaled-instance"),
    }
    web = _python(
        """
        from wsgi import app, huey
        from helpdesk.extensions import db
        from helpdesk.actors import Actor
        from helpdesk.operations.contacts import create_contact
        from helpdesk.operations.tickets import create_ticket
        from helpdesk.operations.messages import reply_to_ticket
        print(type(huey).__name__)
        with app.app_context():
            db.drop_all(); db.create_all()
            contact = create_contact(actor=Actor.system(), name="Ada")
            ticket = create_ticket(contact, actor=Actor.system(), channel="api", subject="Hi")
            message = reply_to_ticket(ticket, actor=Actor.system(), body="On its way")
            db.session.commit()
            print(message.id, message.status.value)
        """,
        env,
    ).split()
    assert web[0] == "RedisHuey"
    message_id, status = web[1], web[2]
    assert status == "queued"  # nothing ran it in this process

    consumer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "huey.bin.huey_consumer",
            "wsgi.huey",
            "--workers",
            "1",
            "--worker-type",
            "thread",
            "--no-periodic",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        engine = create_engine(database_url)
        deadline = time.monotonic() + 30
        status = ""
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                status = conn.execute(
                    text("SELECT status FROM messages WHERE id = :id"), {"id": int(message_id)}
                ).scalar_one()
            if status == "sent":
                break
            time.sleep(0.2)
        engine.dispose()
        assert status == "sent"
    finally:
        consumer.terminate()
        consumer.wait(timeout=10)


def test_with_redis_every_web_process_sees_every_viewer_of_a_ticket(redis_url):
    from redis import Redis

    from helpdesk.realtime import RedisPresence

    # Two web processes: two clients, one Redis.
    first = RedisPresence(Redis.from_url(redis_url), prefix="t1:presence")
    second = RedisPresence(Redis.from_url(redis_url), prefix="t1:presence")
    first.join(7, "sid-a", 1, "Alice Agent")
    second.join(7, "sid-b", 2, "Bob Builder")
    second.join(7, "sid-c", 2, "Bob Builder")  # Bob's second tab counts once

    assert first.viewers(7) == [{"id": 1, "name": "Alice Agent"}, {"id": 2, "name": "Bob Builder"}]
    assert second.tickets_of("sid-a") == [7]

    assert first.leave_all("sid-a") == [7]
    assert second.viewers(7) == [{"id": 2, "name": "Bob Builder"}]
    assert second.leave(7, "sid-b") and not second.leave(7, "sid-b")
    assert first.viewers(7) == [{"id": 2, "name": "Bob Builder"}]
    # A dead process's entries expire instead of haunting the ticket for ever.
    assert 0 < Redis.from_url(redis_url).ttl("t1:presence:ticket:7") <= first.ttl


def test_an_app_with_redis_url_keeps_presence_in_redis(redis_url):
    from flask import Flask
    from redis import Redis

    from helpdesk.realtime import init_presence, presence

    app = Flask("presence-test")
    app.config["REDIS_URL"] = redis_url
    init_presence(app)
    with app.app_context():
        presence.clear()
        presence.join(3, "sid-x", 5, "Carol")
        assert presence.viewers(3) == [{"id": 5, "name": "Carol"}]
    stored = Redis.from_url(redis_url).hgetall("rapport:presence:ticket:3")
    assert list(stored) == [b"sid-x"]
    with app.app_context():
        presence.clear()
