"""Helpers for tests of automation: a recording webhook receiver, rule and job shortcuts.

Kept in the package (not under tests/) so every automation test module can import it.
"""

from __future__ import annotations

import contextlib
import http.server
import importlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from helpdesk.actors import Actor
from helpdesk.extensions import db

# Every automation table must exist before the test session creates the schema,
# including those of sibling packages that init_app pulls in later.
for _name in (
    "automation.rules.models",
    "automation.sla.models",
    "automation.surveys.models",
    "automation.incentives.models",
    "automation.loyalty.models",
    "automation.shop.models",
):
    with contextlib.suppress(ImportError):
        importlib.import_module(_name)


def run(job: Any, *args: Any) -> Any:
    """Call a job the way a worker would: with no transaction open in this session."""
    db.session.commit()
    return job.call_local(*args) if hasattr(job, "call_local") else job(*args)


def make_rule(definition: dict[str, Any], *, enabled: bool = True) -> Any:
    from .operations import create_rule

    rule = create_rule(definition, actor=Actor.system("test"), enabled=enabled)
    db.session.commit()
    return rule


def rule_runs(rule: Any = None) -> list[Any]:
    from sqlalchemy import select

    from .models import RuleRun

    db.session.expire_all()
    stmt = select(RuleRun).order_by(RuleRun.id)
    if rule is not None:
        stmt = stmt.where(RuleRun.rule_id == rule.id)
    return list(db.session.scalars(stmt))


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A local HTTP server that records POSTs and answers with the queued status codes."""

    url: str
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def wire(app: Any) -> Any:
    """Attach automation to a test app, unless ``create_app`` already did."""
    if "rapport.rules" in app.extensions:
        return app
    from automation import rules, sla, surveys

    for package in (rules, surveys, sla):
        package.init_app(app)
    for name in ("automation.incentives", "automation.loyalty", "automation.shop"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        module.init_app(app)
    return app
