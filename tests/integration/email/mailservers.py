"""A real Dovecot (IMAP with IDLE) and a real aiosmtpd for the email tests and the bench.

Recipes: ../shared/RECIPES.md. Both listen on 127.0.0.1 and a free port, live
in a short temporary directory, and are stopped by ``stop()``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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


def dovecot_available() -> bool:
    return shutil.which("dovecot") is not None


@dataclass
class Dovecot:
    host: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    users: dict[str, str]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        shutil.rmtree(self.directory, ignore_errors=True)

    def client(self, user: str) -> Any:
        from imapclient import IMAPClient

        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        client.login(user, self.users[user])
        return client


_CONF = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
instance_name = dovecot-test-{port}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {login_user}
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_fsync = never
# Tests log in with wrong passwords on purpose; no penalty delays for localhost.
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def start_dovecot(users: dict[str, str]) -> Dovecot:
    """Start Dovecot in the foreground with plaintext IMAP for ``users`` (address: password)."""
    directory = Path(tempfile.mkdtemp(prefix="dv"))
    directory.chmod(0o755)
    port = free_port()
    if os.geteuid() == 0:
        # Dovecot refuses mail owned by uid 0: the mail belongs to nobody.
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
        internal_user, internal_group, login_user = "dovecot", "dovecot", "dovenull"
    else:
        uid, gid = os.getuid(), os.getgid()
        me = pwd.getpwuid(uid).pw_name
        import grp

        internal_user, internal_group, login_user = me, grp.getgrgid(gid).gr_name, me
    lines = []
    for user, password in users.items():
        home = directory / "mail" / user
        home.mkdir(parents=True)
        lines.append(f"{user}:{{PLAIN}}{password}:{uid}:{gid}::{home}::")
    if os.geteuid() == 0:
        for path in [directory / "mail", *(directory / "mail").iterdir()]:
            os.chown(path, uid, gid)
    (directory / "users").write_text("\n".join(lines) + "\n")
    (directory / "dovecot.conf").write_text(
        _CONF.format(
            d=directory,
            port=port,
            user=internal_user,
            group=internal_group,
            login_user=login_user,
        )
    )
    process = subprocess.Popen(
        ["dovecot", "-F", "-c", str(directory / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
    except TimeoutError:
        process.kill()
        log = (
            (directory / "dovecot.log").read_text() if (directory / "dovecot.log").exists() else ""
        )
        raise RuntimeError(f"dovecot did not start: {log[-2000:]}") from None
    return Dovecot("127.0.0.1", port, directory, process, dict(users))


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SmtpServer:
    host: str
    port: int
    controller: Any
    received: list[ReceivedMail] = field(default_factory=list)
    #: Recipients answered with "550 5.1.1" at RCPT time.
    reject: set[str] = field(default_factory=set)
    #: Recipients answered with "451 4.3.0" (a temporary failure).
    defer: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stop(self) -> None:
        self.controller.stop()

    def clear(self) -> None:
        with self.lock:
            self.received.clear()
        self.reject.clear()
        self.defer.clear()


def start_smtp() -> SmtpServer:
    """Start aiosmtpd on a free port; what it accepts lands in ``received``."""
    from aiosmtpd.controller import Controller

    port = free_port()
    server = SmtpServer("127.0.0.1", port, controller=None)

    class Handler:
        async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options):
            if address.lower() in server.reject:
                return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
            if address.lower() in server.defer:
                return "451 4.3.0 Try again later"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, smtp, session, envelope):
            with server.lock:
                server.received.append(
                    ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
                )
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    server.controller = controller
    return server
