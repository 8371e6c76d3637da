"""Incentive benchmarks: bulk voucher-code generation into the database, and redemption.

Run alone: ``python bench/incentives_bench.py --db sqlite --codes 200000``
(``--db postgresql`` starts a throwaway server). Without ``--db`` it runs SQLite and,
where the PostgreSQL server binaries are installed, PostgreSQL. Prints a Markdown section.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAPPORT_HUEY_PATH", str(Path(tempfile.mkdtemp()) / "jobs.db"))

TARGET_CODES_PER_SECOND = 50_000


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


def default_databases() -> list[str]:
    """SQLite always; PostgreSQL too when its server can be started here (make bench)."""
    from tests.servers import postgres_available

    return ["sqlite", "postgresql"] if postgres_available() else ["sqlite"]


def make_app(url: str):  # type: ignore[no-untyped-def]
    from helpdesk import create_app

    app = create_app(
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
    if "shop_api" not in app.blueprints:
        from automation import incentives, loyalty, shop

        for package in (incentives, loyalty, shop):
            package.init_app(app)
    return app


def bench_codes(url: str, total: int, rounds: int) -> dict[str, float]:
    from automation.incentives.operations import create_policy, generate_vouchers
    from automation.incentives.policy import RewardKind
    from helpdesk.actors import Actor
    from helpdesk.extensions import db

    app = make_app(url)
    actor = Actor.system("bench")
    with app.app_context():
        db.drop_all()
        db.create_all()
        create_policy(
            actor=actor, key="bulk", name="Bulk", kind=RewardKind.PERCENTAGE, value=Decimal("5")
        )
        db.session.commit()
        rates = []
        for _ in range(rounds):
            start = time.perf_counter()
            generate_vouchers("bulk", total, actor=actor)
            db.session.commit()
            rates.append(total / (time.perf_counter() - start))
        db.session.remove()
        db.engine.dispose()
    return {"codes": total, "rounds": rounds, "median": statistics.median(rates), "min": min(rates)}


def bench_redeem(url: str, count: int) -> dict[str, float]:
    from automation.incentives.models import Voucher
    from automation.incentives.operations import (
        create_policy,
        generate_vouchers,
        redeem_voucher,
    )
    from automation.incentives.policy import RewardKind
    from helpdesk.actors import Actor
    from helpdesk.extensions import db

    app = make_app(url)
    actor = Actor.system("bench")
    with app.app_context():
        db.drop_all()
        db.create_all()
        create_policy(
            actor=actor, key="r", name="R", kind=RewardKind.PERCENTAGE, value=Decimal("5")
        )
        batch = generate_vouchers("r", count, actor=actor)
        db.session.commit()
        codes = db.session.scalars(db.select(Voucher.code).where(Voucher.batch == batch)).all()
        start = time.perf_counter()
        for i, code in enumerate(codes):
            redeem_voucher(
                code, contact=None, order_total=Decimal("50"), actor=actor, order_ref=str(i)
            )
            db.session.commit()
        seconds = time.perf_counter() - start
        db.session.remove()
        db.engine.dispose()
    return {"redemptions": count, "per_second": count / seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--codes", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redeem", type=int, default=500)
    args = parser.parse_args(argv)
    kinds = args.db or default_databases()

    print("### Bulk voucher codes (`generate_vouchers`, one commit per round)\n")
    print("| database | codes per round | rounds | median codes/s | slowest round | target |")
    print("|---|---:|---:|---:|---:|---|")
    for kind in kinds:
        with database(kind) as url:
            r = bench_codes(url, args.codes, args.rounds)
        verdict = "met" if r["median"] >= TARGET_CODES_PER_SECOND else "missed"
        print(
            f"| {kind} | {r['codes']:,} | {r['rounds']} | {r['median']:,.0f} | {r['min']:,.0f} "
            f"| > {TARGET_CODES_PER_SECOND:,}/s ({verdict}) |",
            flush=True,
        )
    print("\n### Redemption (`redeem_voucher`, one commit each)\n")
    print("| database | redemptions | redemptions/s |")
    print("|---|---:|---:|")
    for kind in kinds:
        with database(kind) as url:
            r = bench_redeem(url, args.redeem)
        print(f"| {kind} | {r['redemptions']:,} | {r['per_second']:,.0f} |", flush=True)
    print()


if __name__ == "__main__":
    main()
