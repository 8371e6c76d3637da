"""Run every benchmark and write bench/RESULTS.md with the machine and the date.

Each benchmark is a script that prints a Markdown section; this collects them.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCRIPTS = ["core_bench.py", "email_bench.py", "rules_bench.py", "incentives_bench.py"]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}){memory}, Python {platform.python_version()}"


def main() -> int:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    sections = [
        "# Benchmark results\n",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Commit: {commit or 'unknown'}",
        "- Command: `make bench` (bench/run.py)\n",
    ]
    failed = False
    for name in SCRIPTS:
        script = BENCH / name
        if not script.exists():
            continue
        print(f"running {name} …", flush=True)
        done = subprocess.run(
            [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True
        )
        if done.returncode != 0:
            failed = True
            sections.append(
                f"## {name}\n\nFailed with exit code {done.returncode}:\n\n```\n{done.stderr[-3000:]}\n```\n"
            )
        else:
            sections.append(f"## {name}\n\n{done.stdout.strip()}\n")
    (BENCH / "RESULTS.md").write_text("\n".join(sections) + "\n")
    print((BENCH / "RESULTS.md").read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
