"""Email throughput: parse_email alone, and Dovecot -> tickets end to end.

Run: ``python bench/email_bench.py [--mails 10000] [--commit-every 1,100]``.
Starts its own Dovecot and SQLite database in a temporary directory, prints a
Markdown section to stdout (progress goes to stderr).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="rbench"))
os.environ["RAPPORT_HUEY_PATH"] = str(WORK / "jobs.db")
os.environ.pop("REDIS_URL", None)
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("RAPPORT_LOG_LEVEL", "WARNING")

CORPUS = ROOT / ".." / "shared" / "corpora" / "email" / "chatwoot"
ADDRESS = "bench@example.test"
PASSWORD = "bench-secret"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def generated_mail(i: int, rng: random.Random) -> bytes:
    """A realistic small customer mail: plain + HTML, some replies, a few attachments."""
    mail = EmailMessage()
    customer = rng.randrange(2000)
    mail["From"] = f"Customer {customer} <customer{customer}@shop.example>"
    mail["To"] = f"Support <{ADDRESS}>"
    mail["Subject"] = f"Order {100000 + i}: question about delivery"
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = f"<bench-{i}@shop.example>"
    if i > 10 and rng.random() < 0.3:
        earlier = rng.randrange(i - 10, i)
        mail["In-Reply-To"] = f"<bench-{earlier}@shop.example>"
        mail["References"] = f"<bench-{earlier}@shop.example>"
    text = (
        f"Hello,\n\nmy order {100000 + i} has not arrived yet. Could you check where it is?\n"
        "It was supposed to come last Tuesday.\n\nThanks,\nCustomer\n\n"
        "On Mon, 6 May 2024 at 10:00, Support <support@example.test> wrote:\n"
        "> Thank you for your order.\n> It will ship soon.\n"
    )
    mail.set_content(text)
    mail.add_alternative(
        f"<html><body><p>{text.replace(chr(10), '<br>')}</p></body></html>", subtype="html"
    )
    if rng.random() < 0.05:
        mail.add_attachment(
            rng.randbytes(20_000), maintype="application", subtype="pdf", filename="invoice.pdf"
        )
    return mail.as_bytes()


def bench_parse(seconds: float = 3.0) -> tuple[str, int, float, int]:
    from channels.email import parse_email

    files = sorted(CORPUS.glob("*.eml")) if CORPUS.is_dir() else []
    if files:
        raws = [p.read_bytes() for p in files]
        source = f"Chatwoot corpus ({len(raws)} mails, repeated)"
    else:
        rng = random.Random(1)
        raws = [generated_mail(i, rng) for i in range(200)]
        source = "generated mail (corpus not found)"
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for raw in raws:
            parse_email(raw)
        count += len(raws)
    elapsed = time.perf_counter() - started
    return source, count, elapsed, sum(map(len, raws)) // len(raws)


def append_all(dovecot, folder: str, raws: list[bytes], connections: int = 4) -> float:
    chunks = [raws[i::connections] for i in range(connections)]

    def worker(chunk: list[bytes]) -> None:
        client = dovecot.client(ADDRESS)
        for raw in chunk:
            client.append(folder, raw)
        client.logout()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def bench_end_to_end(
    mails: int, commit_every: int, dovecot, parse_processes: int = 1
) -> dict[str, float]:
    from sqlalchemy import func, select

    from channels.email import init_app
    from channels.email.imap import poll_mailbox
    from channels.email.mailboxes import create_mailbox
    from channels.email.models import Security
    from helpdesk import create_app
    from helpdesk.actors import Actor
    from helpdesk.extensions import db
    from helpdesk.models import Message, Ticket

    run = WORK / f"run-{commit_every}-{parse_processes}"
    run.mkdir()
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "bench",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{run / 'rapport.db'}",
            "INSTANCE_PATH": str(run),
            "RAPPORT_ATTACHMENT_DIR": str(run / "attachments"),
            "RAPPORT_JOBS_IMMEDIATE": True,
            "RAPPORT_EMBEDDED_WORKER": False,
            "RAPPORT_EMAIL_PARSE_PROCESSES": parse_processes,
        }
    )
    init_app(app)
    folder = f"bench{commit_every}p{parse_processes}"
    rng = random.Random(42)
    raws = [generated_mail(i, rng) for i in range(mails)]
    client = dovecot.client(ADDRESS)
    client.create_folder(folder)
    client.logout()
    log(f"appending {mails} mails to {folder} …")
    append_seconds = append_all(dovecot, folder, raws)
    with app.app_context():
        db.create_all()
        box = create_mailbox(
            actor=Actor.system("bench"),
            name="Bench",
            address=ADDRESS,
            imap_host=dovecot.host,
            imap_port=dovecot.port,
            imap_security=Security.NONE,
            imap_username=ADDRESS,
            imap_password=PASSWORD,
            imap_folder=folder,
            smtp_host="127.0.0.1",
            smtp_port=1,
            smtp_security=Security.NONE,
        )
        db.session.commit()
        box_id = box.id
        db.session.commit()
        log(f"polling (commit every {commit_every}) …")
        started = time.perf_counter()
        result = poll_mailbox(box_id, commit_every=commit_every)
        poll_seconds = time.perf_counter() - started
        messages = db.session.scalar(select(func.count()).select_from(Message))
        tickets = db.session.scalar(select(func.count()).select_from(Ticket))
        db.session.remove()
        db.engine.dispose()
    assert result.status == "done", result
    return {
        "append_s": append_seconds,
        "poll_s": poll_seconds,
        "messages": messages,
        "tickets": tickets,
        "quarantined": result.quarantined,
        "mails": mails,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mails", type=int, default=10_000)
    parser.add_argument("--commit-every", default="20", help="comma-separated batch sizes")
    parser.add_argument(
        "--parse-processes", default="1,0", help="comma-separated RAPPORT_EMAIL_PARSE_PROCESSES"
    )
    args = parser.parse_args()

    from tests.integration.email.mailservers import start_dovecot

    log("parsing …")
    source, parsed, parse_seconds, avg_size = bench_parse()
    dovecot = start_dovecot({ADDRESS: PASSWORD})
    runs = []
    try:
        for every in [int(x) for x in args.commit_every.split(",")]:
            for processes in [int(x) for x in args.parse_processes.split(",")]:
                runs.append(
                    (every, processes, bench_end_to_end(args.mails, every, dovecot, processes))
                )
    finally:
        dovecot.stop()
        shutil.rmtree(WORK, ignore_errors=True)

    print("### Email throughput\n")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()};"
        " SQLite (WAL) on local disk; Dovecot on 127.0.0.1 (maildir, plaintext IMAP).\n"
    )
    print("| measurement | mails | seconds | mails/s |")
    print("|---|---:|---:|---:|")
    print(
        f"| `parse_email` alone, {source}, avg {avg_size // 1024} KiB "
        f"| {parsed} | {parse_seconds:.2f} | {parsed / parse_seconds:,.0f} |"
    )
    for every, processes, r in runs:
        print(
            f"| IMAP APPEND into Dovecot (4 connections, setup) | {r['mails']} "
            f"| {r['append_s']:.2f} | {r['mails'] / r['append_s']:,.0f} |"
        )
        print(
            f"| Dovecot → tickets, one poller pass, commit every {every}, "
            f"{processes or 'no'} parse worker{'s' if processes != 1 else ''} "
            f"({r['tickets']} tickets, {r['messages']} messages, {r['quarantined']} quarantined) "
            f"| {r['mails']} | {r['poll_s']:.2f} | {r['mails'] / r['poll_s']:,.0f} |"
        )
    print(
        "\nEnd to end is one poller: header fetch, known-Message-ID check, body fetch "
        "(`BODY.PEEK[]`, 50 per round trip), `parse_email` (in a worker process when "
        "there are parse workers, one group ahead of the ingest), `ingest_message`, "
        "`last_uid` advanced in the same transaction, then `\\Seen`. Target: 500 mails/s."
    )


if __name__ == "__main__":
    main()
