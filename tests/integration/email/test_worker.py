"""``flask --app wsgi email-worker`` as it runs in production: a separate process, a real
Dovecot, its own SQLite database, stopped by SIGTERM; two of them share a mailbox by its lease."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from channels.email.models import Mailbox, Security
from helpdesk.extensions import db
from helpdesk.models import Ticket
from tests.integration.email.conftest import PASSWORD, SUPPORT, make_mail

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
SECRET_KEY = "worker-test-secret"


@dataclass
class Site:
    """One installation: a database, the environment its processes run with, and an app on it."""

    directory: Path
    env: dict[str, str]
    app: Any

    def read(self, query: Callable[[], Any]) -> Any:
        with self.app.app_context():
            try:
                return query()
            finally:
                db.session.remove()

    def subjects(self) -> list[str]:
        return self.read(
            lambda: list(db.session.scalars(select(Ticket.subject).order_by(Ticket.id)))
        )

    def mailbox(self) -> tuple[str | None, Any]:
        def lease() -> tuple[str | None, Any]:
            mailbox = db.session.scalars(select(Mailbox)).one()
            return mailbox.lease_owner, mailbox.last_uid

        return self.read(lease)


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    output: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def imap_connections(pid: int, port: int) -> int:
    """Established TCP connections from process ``pid`` to 127.0.0.1:``port`` (Linux /proc)."""
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            sockets.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            established = fields[3] == "01"
            if established and remote_port == port and fields[9] in sockets:
                count += 1
    return count


@pytest.fixture
def site(dovecot: Any, folder: str) -> Iterator[Site]:
    from channels.email.mailboxes import create_mailbox
    from helpdesk import create_app
    from helpdesk.actors import Actor

    directory = Path(tempfile.mkdtemp(prefix="rw"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")},
        "DATABASE_URL": f"sqlite:///{directory / 'rapport.db'}",
        "RAPPORT_INSTANCE_PATH": str(directory / "instance"),
        "RAPPORT_HUEY_PATH": str(directory / "jobs.db"),
        "RAPPORT_SECRET_KEY": SECRET_KEY,
        "RAPPORT_EMBEDDED_WORKER": "0",
        # IDLE wakes the worker on new mail; these only bound how long anything waits.
        "RAPPORT_EMAIL_IDLE_SECONDS": "5",
        "RAPPORT_EMAIL_POLL_SECONDS": "1",
        "RAPPORT_EMAIL_LEASE_SECONDS": "30",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("REDIS_URL", None)
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"],
            "SECRET_KEY": SECRET_KEY,
            "INSTANCE_PATH": env["RAPPORT_INSTANCE_PATH"],
            "RAPPORT_EMBEDDED_WORKER": False,
            "RAPPORT_JOBS_IMMEDIATE": True,
        }
    )
    with app.app_context():
        create_mailbox(
            actor=Actor.system("test"),
            name="Support",
            address=SUPPORT,
            imap_host=dovecot.host,
            imap_port=dovecot.port,
            imap_security=Security.NONE,
            imap_username=SUPPORT,
            imap_password=PASSWORD,
            imap_folder=folder,
            smtp_host="127.0.0.1",
            smtp_security=Security.NONE,
        )
        db.session.commit()
        db.session.remove()
    yield Site(directory, env, app)
    with app.app_context():
        db.engine.dispose()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def start_worker(site: Site) -> Iterator[Callable[[], Worker]]:
    workers: list[Worker] = []

    def start() -> Worker:
        output = site.directory / f"worker-{len(workers) + 1}.log"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "wsgi", "email-worker", "--rescan", "1"],
                cwd=REPO,
                env=site.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        worker = Worker(process, output)
        workers.append(worker)
        wait_until(lambda: "email worker started" in worker.text(), what="the worker starts")
        return worker

    yield start
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait(timeout=10)


def owned_by(worker: Worker, owner: str | None) -> bool:
    return owner is not None and f":{worker.pid}:worker:" in owner


def test_email_worker_turns_new_mail_into_tickets_and_stops_cleanly_on_sigterm(
    site, start_worker, append, dovecot
):
    worker = start_worker()
    wait_until(lambda: owned_by(worker, site.mailbox()[0]), what="the worker takes the lease")

    append(make_mail(subject="Arrived while the worker watched"))
    wait_until(
        lambda: site.subjects() == ["Arrived while the worker watched"], what="the ticket appears"
    )
    assert imap_connections(worker.pid, dovecot.port) == 1

    assert worker.stop() == 0
    output = worker.text()
    assert "stopping on signal 15" in output and output.rstrip().endswith("email worker stopped")
    assert "Traceback" not in output
    owner, last_uid = site.mailbox()
    assert owner is None, "the lease is given back on the way out"
    assert last_uid == 1


def test_second_email_worker_waits_for_the_lease_and_takes_over_when_the_first_stops(
    site, start_worker, append, dovecot
):
    first = start_worker()
    wait_until(lambda: owned_by(first, site.mailbox()[0]), what="the first worker takes the lease")
    second = start_worker()

    append(make_mail(subject="One"))
    wait_until(lambda: site.subjects() == ["One"], what="the first ticket appears")
    # The second worker has tried to claim the mailbox a few times by now (every second).
    time.sleep(2)
    assert owned_by(first, site.mailbox()[0])
    assert imap_connections(first.pid, dovecot.port) == 1
    assert imap_connections(second.pid, dovecot.port) == 0, "only the lease holder connects"

    assert first.stop() == 0
    wait_until(lambda: owned_by(second, site.mailbox()[0]), what="the second worker takes over")
    append(make_mail(subject="Two"))
    wait_until(lambda: site.subjects() == ["One", "Two"], what="the second ticket appears")
    assert imap_connections(second.pid, dovecot.port) == 1

    assert second.stop() == 0
    assert site.mailbox() == (None, 2)
    assert "Traceback" not in first.text() + second.text()
