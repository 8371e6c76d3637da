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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.email.certificates import Certificates


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
    #: The implicit-TLS (IMAPS) port, when started with certificates; ``port`` then offers STARTTLS.
    ssl_port: int | None = None

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
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login{mechanisms}
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {login_user}
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_fsync = never
# Tests log in with wrong passwords on purpose; no penalty delays for localhost.
auth_failure_delay = 0
{oauth2_passdb}passdb {{
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
    address = 127.0.0.1
    port = {ssl_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


_TLS = """\
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}"""

# Dovecot asks this URL whether an XOAUTH2 access token is live and whose it is.
_OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {d}/oauth2.conf.ext
}}
"""
_OAUTH2_ARGS = """\
introspection_mode = post
introspection_url = {url}
username_attribute = email
active_attribute = active
active_value = true
"""


def start_dovecot(
    users: dict[str, str],
    *,
    certificates: Certificates | None = None,
    oauth2_introspection_url: str | None = None,
) -> Dovecot:
    """Start Dovecot in the foreground with IMAP for ``users`` (address: password).

    Plaintext only by default. With ``certificates`` the IMAP port offers
    STARTTLS and ``ssl_port`` speaks implicit TLS. With ``oauth2_introspection_url``
    XOAUTH2 and OAUTHBEARER logins are checked against that introspection endpoint.
    """
    directory = Path(tempfile.mkdtemp(prefix="dv"))
    directory.chmod(0o755)
    port = free_port()
    ssl_port = free_port() if certificates else 0
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
    if oauth2_introspection_url:
        (directory / "oauth2.conf.ext").write_text(
            _OAUTH2_ARGS.format(url=oauth2_introspection_url)
        )
    (directory / "dovecot.conf").write_text(
        _CONF.format(
            d=directory,
            port=port,
            ssl_port=ssl_port,
            user=internal_user,
            group=internal_group,
            login_user=login_user,
            ssl=(
                _TLS.format(cert=certificates.cert_file, key=certificates.key_file)
                if certificates
                else "ssl = no"
            ),
            mechanisms=" xoauth2 oauthbearer" if oauth2_introspection_url else "",
            oauth2_passdb=_OAUTH2_PASSDB.format(d=directory) if oauth2_introspection_url else "",
        )
    )
    process = subprocess.Popen(
        ["dovecot", "-F", "-c", str(directory / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        if ssl_port:
            wait_for_port(ssl_port)
    except TimeoutError:
        process.kill()
        log = (
            (directory / "dovecot.log").read_text() if (directory / "dovecot.log").exists() else ""
        )
        raise RuntimeError(f"dovecot did not start: {log[-2000:]}") from None
    return Dovecot("127.0.0.1", port, directory, process, dict(users), ssl_port or None)


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


def start_smtp(
    *,
    tls: str | None = None,
    certificates: Certificates | None = None,
    logins: dict[str, str] | None = None,
    oauth: Callable[[str, str], bool] | None = None,
) -> SmtpServer:
    """Start aiosmtpd on a free port; what it accepts lands in ``received``.

    ``tls="ssl"`` speaks TLS from the first byte; ``tls="starttls"`` requires
    STARTTLS before any mail. With ``logins`` (username: password) AUTH is
    offered (after STARTTLS only, where there is one) and checked. With ``oauth``,
    AUTH XOAUTH2 is offered and ``oauth(user, token)`` decides; a refusal follows
    the providers' exchange (a JSON error challenge, then 535).
    """
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    port = free_port()
    options: dict[str, Any] = {}
    if tls:
        assert certificates is not None, "TLS needs certificates"
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificates.cert_file, certificates.key_file)
        if tls == "ssl":
            # aiosmtpd counts only STARTTLS as TLS for AUTH; this socket is TLS from the start.
            options.update(ssl_context=context, auth_require_tls=False)
        else:
            options.update(tls_context=context, require_starttls=True)
    if logins is not None or oauth is not None:
        known = logins or {}

        def authenticator(smtp, session, envelope, mechanism, auth_data):
            login = auth_data.login.decode()
            return AuthResult(success=known.get(login) == auth_data.password.decode())

        # Required too, except on implicit TLS, where aiosmtpd would warn about it (see above).
        options.update(authenticator=authenticator, auth_required=tls != "ssl")
        if oauth is not None and tls is None:
            # Tokens in the clear, on loopback only; AUTH offered but not demanded.
            options.update(auth_require_tls=False, auth_required=False)
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

    handler = Handler()
    if oauth is not None:

        class OAuthHandler(Handler):
            async def auth_XOAUTH2(self, smtp, args):
                import base64

                fields = base64.b64decode(args[1]).decode().split("\x01") if len(args) > 1 else []
                values = dict(f.split("=", 1) for f in fields if "=" in f)
                user = values.get("user", "")
                token = values.get("auth", "").removeprefix("Bearer ")
                if oauth(user, token):
                    return AuthResult(success=True, auth_data=user)
                await smtp.challenge_auth('{"status":"401","schemes":"bearer"}')
                return AuthResult(success=False, handled=False)  # so the 535 goes out

        handler = OAuthHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    server.controller = controller
    return server


@dataclass
class TokenRequest:
    path: str
    form: dict[str, str]
    authorization: str | None


@dataclass
class TokenServer:
    """A small OAuth2 authorization server: refresh-token grants and token introspection.

    ``POST /token`` answers ``grant_type=refresh_token`` for the refresh tokens in
    ``refresh_tokens`` (refresh token: the user it belongs to) with a new access
    token every time; ``POST /introspect`` tells whether an access token it issued
    is live and whose it is (RFC 7662), which is what Dovecot's oauth2 passdb asks.
    Every request lands in ``requests``.
    """

    url: str
    server: Any
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    client_id: str = "rapport"
    client_secret: str = "client-secret"
    expires_in: int = 3600
    issued: dict[str, str] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    requests: list[TokenRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def token_requests(self) -> list[TokenRequest]:
        with self.lock:
            return [r for r in self.requests if r.path == "/token"]

    def introspections(self) -> list[TokenRequest]:
        with self.lock:
            return [r for r in self.requests if r.path == "/introspect"]

    def clear(self) -> None:
        """Forget requests and every token issued so far."""
        with self.lock:
            self.requests.clear()
            self.issued.clear()
        self.revoked.clear()

    def answer(
        self, path: str, form: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        import base64
        import secrets as secrets_lib

        with self.lock:
            self.requests.append(TokenRequest(path, form, authorization))
        if path == "/introspect":
            token = form.get("token", "")
            user = self.issued.get(token)
            if user is None or token in self.revoked:
                return 200, {"active": False}
            return 200, {"active": True, "email": user, "scope": "imap"}
        if path != "/token":
            return 404, {"error": "not_found"}
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        by_form = (form.get("client_id"), form.get("client_secret")) == (
            self.client_id,
            self.client_secret,
        )
        if authorization != f"Basic {basic}" and not by_form:
            return 401, {
                "error": "invalid_client",
                "error_description": "client authentication failed",
            }
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}
        user = self.refresh_tokens.get(form.get("refresh_token", ""))
        if user is None:
            return 400, {
                "error": "invalid_grant",
                "error_description": "Token has been expired or revoked.",
            }
        access = "at-" + secrets_lib.token_urlsafe(24)
        with self.lock:
            self.issued[access] = user
        return 200, {"access_token": access, "token_type": "Bearer", "expires_in": self.expires_in}


def start_token_server() -> TokenServer:
    """Serve :class:`TokenServer` on a free port in a thread."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qsl

    holder: dict[str, TokenServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            status, body = holder["server"].answer(
                self.path.split("?", 1)[0], form, self.headers.get("Authorization")
            )
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the requests are recorded; stderr stays quiet

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server = TokenServer(f"http://127.0.0.1:{httpd.server_address[1]}", httpd)
    holder["server"] = server
    threading.Thread(target=httpd.serve_forever, name="token-server", daemon=True).start()
    return server
