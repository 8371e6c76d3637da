"""Core benchmarks: ingest_message throughput and the inbox list at 100k and 1M tickets.

Run through ``make bench`` (bench/run.py), or alone:
``python bench/core_bench.py --db sqlite --sizes 100000``. Prints a Markdown section.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAPPORT_HUEY_PATH", str(Path(tempfile.mkdtemp()) / "jobs.db"))


@contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "postgresql":
        from tests.servers import start_postgres

        server = start_postgres("rapport_bench")
        try:
            yield server.url
        finally:
            server.stop()
    else:
        directory = Path(tempfile.mkdtemp(prefix="rapport-bench-"))
        yield f"sqlite:///{directory / 'bench.db'}"


def make_app(url: str):  # type: ignore[no-untyped-def]
    from helpdesk import create_app

    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": "bench",
            "RAPPORT_JOBS_IMMEDIATE": True,
            "RAPPORT_EMBEDDED_WORKER": False,
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": False,
            "INSTANCE_PATH": tempfile.mkdtemp(prefix="rapport-bench-instance-"),
        }
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Return (median, p95) in milliseconds over ``repeat`` calls after two warm-ups."""
    for _ in range(2):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), percentile(samples, 95)


# ------------------------------------------------------------------ ingest


def bench_ingest(url: str, count: int, commit_every: int = 1) -> dict[str, float]:
    from channels.base import IdentityKind, InboundMessage, SenderIdentity, ThreadingHints
    from helpdesk.extensions import db
    from helpdesk.ingest import ingest_message

    app = make_app(url)
    with app.app_context():
        db.drop_all()
        db.create_all()
        senders = [f"customer{i}@example.test" for i in range(max(count // 4, 1))]
        messages = []
        for i in range(count):
            # A quarter start conversations, the rest reply to an earlier message.
            sender = senders[i % len(senders)]
            hints = ThreadingHints(
                message_id=f"m{i}@bench",
                in_reply_to=(f"m{i - len(senders)}@bench",) if i >= len(senders) else (),
            )
            messages.append(
                InboundMessage(
                    channel="email",
                    external_id=f"m{i}@bench",
                    sender=SenderIdentity(IdentityKind.EMAIL, sender, f"Customer {i}"),
                    subject=f"Question {i}",
                    text="Hello, I have a question about my order. " * 5,
                    threading=hints,
                )
            )
        start = time.perf_counter()
        cpu_start = time.process_time()
        for i, msg in enumerate(messages, 1):
            ingest_message(msg)
            if i % commit_every == 0:
                db.session.commit()
        db.session.commit()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        # No drop_all: the database is thrown away, and dropping big tables with
        # foreign keys enforced costs minutes on SQLite.
        db.session.remove()
        db.engine.dispose()
    return {
        "messages": count,
        "seconds": elapsed,
        "per_second": count / elapsed,
        "cpu_ms": cpu / count * 1000,
    }


# ------------------------------------------------------------------ inbox list

TEAMS = 5
TAGS = ["vip", "shipping", "billing", "returns", "damaged", "discounts", "bug", "feedback"]
STATUSES = ["new", "open", "pending", "solved", "closed"]
STATUS_WEIGHTS = [10, 20, 15, 25, 30]
CHANNELS = ["email", "sms", "whatsapp", "telegram", "webchat", "api"]


def populate(url: str, tickets: int) -> None:
    """Bulk-load ``tickets`` tickets with contacts, teams and tags (raw SQL, not the ORM)."""
    from sqlalchemy import text

    from helpdesk.extensions import db

    rng = random.Random(42)
    contacts = max(tickets // 10, 1)
    now = datetime.now(UTC)
    sqlite = url.startswith("sqlite")

    def ts(value: datetime) -> object:
        return value.replace(tzinfo=None).isoformat(sep=" ") if sqlite else value

    conn = db.engine.raw_connection()
    cur = conn.cursor()
    ph = "?" if sqlite else "%s"

    def insert(table: str, columns: list[str], rows: list[tuple[object, ...]]) -> None:
        if not rows:
            return
        if sqlite:
            cur.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([ph] * len(columns))})",
                rows,
            )
        else:
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    if sqlite:
        cur.execute("BEGIN")
    insert(
        "users",
        ["id", "email", "name", "password_hash", "role", "is_active_user", "is_away", "created_at"],
        [
            (i, f"agent{i}@bench.test", f"Agent {i}", "x", "agent", True, False, ts(now))
            for i in range(1, 21)
        ],
    )
    insert(
        "teams",
        ["id", "name", "is_round_robin"],
        [(i, f"Team {i}", False) for i in range(1, TEAMS + 1)],
    )
    insert("tags", ["id", "name"], [(i + 1, name) for i, name in enumerate(TAGS)])
    chunk = 100_000
    for start in range(0, contacts, chunk):
        ids = range(start + 1, min(contacts, start + chunk) + 1)
        insert(
            "contacts",
            ["id", "name", "attributes", "notes", "created_at"],
            [(i, f"Contact {i}", "{}", "", ts(now)) for i in ids],
        )
        insert(
            "contact_identities",
            ["id", "contact_id", "kind", "value", "created_at"],
            [(i, i, "email", f"c{i}@bench.test", ts(now)) for i in ids],
        )
    for start in range(0, tickets, chunk):
        rows, tag_rows = [], []
        for i in range(start + 1, min(tickets, start + chunk) + 1):
            status = rng.choices(STATUSES, STATUS_WEIGHTS)[0]
            at = now - timedelta(seconds=rng.randrange(365 * 24 * 3600))
            rows.append(
                (
                    i,
                    f"Ticket {i}",
                    status,
                    status in ("new", "open"),
                    "normal",
                    rng.choice(CHANNELS),
                    rng.randrange(1, contacts + 1),
                    rng.choice([None, *range(1, 21)]),
                    rng.randrange(1, TEAMS + 1),
                    "{}",
                    ts(at),
                    ts(at),
                    ts(at),
                    0,
                    status == "new",
                )
            )
            for tag_id in {
                t for t in (rng.randrange(1, len(TAGS) * 3) for _ in range(2)) if t <= len(TAGS)
            }:
                tag_rows.append((tag_id, i))
        insert(
            "tickets",
            [
                "id",
                "subject",
                "status",
                "is_active",
                "priority",
                "channel",
                "contact_id",
                "assignee_id",
                "team_id",
                "attributes",
                "created_at",
                "updated_at",
                "last_activity_at",
                "reopen_count",
                "is_unread",
            ],
            rows,
        )
        insert("ticket_tags", ["tag_id", "ticket_id"], tag_rows)
    if not sqlite:
        for table in ("users", "teams", "tags", "contacts", "contact_identities", "tickets"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
    conn.commit()
    cur.close()
    conn.close()
    with db.engine.begin() as c:
        c.execute(text("ANALYZE"))


def bench_inbox(url: str, tickets: int, repeat: int) -> list[dict[str, object]]:
    from helpdesk.extensions import db
    from helpdesk.inbox.queries import ListFilters, list_tickets

    app = make_app(url)
    results: list[dict[str, object]] = []
    with app.app_context():
        db.drop_all()
        db.create_all()
        start = time.perf_counter()
        populate(url, tickets)
        load_seconds = time.perf_counter() - start
        cases = {
            "all open, first page": ListFilters(view="open"),
            "open, team + tag, first page": ListFilters(view="open", team_id=2, tag="vip"),
        }
        for label, filters in cases.items():
            median, p95 = timed(
                lambda f=filters: (list_tickets(f, user_id=None), db.session.rollback()), repeat
            )
            results.append({"case": label, "median_ms": median, "p95_ms": p95})
        # A deep page: the cursor after the first 5,000 rows of the filtered list.
        deep_filters = ListFilters(view="open", team_id=2)
        cursor = None
        for _ in range(100):
            page = list_tickets(deep_filters, user_id=None, cursor=cursor)
            cursor = page.next_cursor
            if cursor is None:
                break
        db.session.rollback()
        median, p95 = timed(
            lambda: (
                list_tickets(deep_filters, user_id=None, cursor=cursor),
                db.session.rollback(),
            ),
            repeat,
        )
        results.append(
            {"case": "open, team, page 101 (5,000 rows deep)", "median_ms": median, "p95_ms": p95}
        )
        # The whole page as an agent sees it: HTTP round trip through the app, template included.
        client = app.test_client()
        with client.session_transaction() as session:
            session["_user_id"] = "1"
            session["_fresh"] = True
        response = client.get("/?view=open&team=2&tag=vip")
        if response.status_code == 200:
            median, p95 = timed(lambda: client.get("/?view=open&team=2&tag=vip"), repeat)
            results.append(
                {"case": "inbox page over HTTP (team + tag)", "median_ms": median, "p95_ms": p95}
            )
        db.session.remove()
        db.engine.dispose()
    for row in results:
        row["load_seconds"] = load_seconds
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--ingest", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=60)
    args = parser.parse_args(argv)
    kinds = args.db or ["sqlite", "postgresql"]
    sizes = [int(s) for s in args.sizes.split(",") if s]

    print("### Ingest (`ingest_message`, events dispatched after each commit)\n")
    print(
        "A quarter of the messages start a conversation (new contact and ticket), the rest"
        " reply by Message-ID. CPU is this process's time per message (SQLite runs in it).\n"
    )
    print("| database | commit | messages | seconds | messages/s | CPU ms/message | target |")
    print("|---|---|---:|---:|---:|---:|---|")
    for kind in kinds:
        for every, label in (
            (1, "every message (API, portal, webhooks)"),
            (20, "every 20 (the email poller's default)"),
            (100, "every 100"),
        ):
            with database(kind) as url:
                r = bench_ingest(url, args.ingest, commit_every=every)
            target = "≥ 1,000/s" if kind == "sqlite" else "—"
            print(
                f"| {kind} | {label} | {r['messages']:,} | {r['seconds']:.2f} "
                f"| {r['per_second']:,.0f} | {r['cpu_ms']:.2f} | {target} |",
                flush=True,
            )

    print("\n### Inbox list (server time, ms)\n")
    print("| database | tickets | case | median | p95 | target |")
    print("|---|---:|---|---:|---:|---|")
    for kind in kinds:
        for size in sizes:
            with database(kind) as url:
                rows = bench_inbox(url, size, args.repeat)
            for row in rows:
                target = (
                    "p95 < 50 ms" if "first page" in str(row["case"]) and size >= 1_000_000 else ""
                )
                print(
                    f"| {kind} | {size:,} | {row['case']} | {row['median_ms']:.1f} | {row['p95_ms']:.1f} | {target} |",
                    flush=True,
                )
    print()


if __name__ == "__main__":
    main()
