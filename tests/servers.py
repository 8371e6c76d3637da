"""Real servers for tests, started on 127.0.0.1 and a free port by the test session.

Recipes: ../shared/RECIPES.md. Each helper returns a handle with ``stop()``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("RAPPORT_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Postgres:
    url: str
    directory: Path
    port: int

    def stop(self) -> None:
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            self.directory,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


def _as_postgres(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, timeout=60)


def postgres_available() -> bool:
    return (PG_BIN / "initdb").exists()


def start_postgres(dbname: str = "rapport_test") -> Postgres:
    """initdb a throwaway cluster in a temp dir and start it (about 1.5 s)."""
    directory = Path(tempfile.mkdtemp(prefix="rpg"))
    directory.chmod(0o755)
    password = secrets.token_hex(8)
    (directory / "pw").write_text(password)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres")
        shutil.chown(directory / "pw", "postgres")
    port = free_port()
    _as_postgres(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(directory / "data"),
            "-U",
            "postgres",
            "--pwfile",
            str(directory / "pw"),
            "-A",
            "scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale",
            "C.UTF-8",
        ],
        directory,
    )
    options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    _as_postgres(
        [
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(directory / "data"),
            "-o",
            options,
            "-l",
            str(directory / "log"),
            "-w",
            "start",
        ],
        directory,
    )
    env = {**os.environ, "PGPASSWORD": password}
    cmd = [
        str(PG_BIN.parent / "bin" / "createdb"),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        "postgres",
        dbname,
    ]
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=30)
    return Postgres(
        url=f"postgresql+psycopg://postgres:{password}@127.0.0.1:{port}/{dbname}",
        directory=directory,
        port=port,
    )


@dataclass
class Redis:
    url: str
    process: subprocess.Popen[bytes]
    directory: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def redis_available() -> bool:
    return shutil.which("redis-server") is not None


def start_redis() -> Redis:
    """A throwaway redis-server on a free port, no persistence."""
    directory = Path(tempfile.mkdtemp(prefix="rrd"))
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return Redis(url=f"redis://127.0.0.1:{port}/0", process=process, directory=directory)
