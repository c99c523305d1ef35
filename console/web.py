"""The console's HTTP side: the standard library's ThreadingHTTPServer, cookies, CSRF, routes.

Why no web framework: the console has a dozen routes, and http.server keeps the server's
dependencies as they are. Security headers follow the OWASP Secure Headers project: a strict
Content-Security-Policy (only the console's own scripts and styles), no framing, no sniffing.
The session cookie is HttpOnly and SameSite=Strict, Secure when ``console.secure_cookies`` says
the console is served behind TLS. Every POST must carry the session's CSRF token, compared in
constant time; a POST without it changes nothing and is answered 403.
"""

from __future__ import annotations

import hmac
import logging
import threading
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from homevitals.console.accounts import Session
from homevitals.console.app import ConsoleApp
from homevitals.console.errors import ConsoleError
from homevitals.console.routes import ROUTES, Reply, Request

__all__ = ["COOKIE", "ConsoleServer"]

logger = logging.getLogger(__name__)

COOKIE = "hv_session"
MAX_BODY = 64 * 1024
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
        " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_STATIC = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}


class ConsoleServer:
    def __init__(self, app: ConsoleApp) -> None:
        self.app = app
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.static = {name: (resources.files("homevitals.console") / "static" / name).read_bytes()
                       for name in _STATIC}

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> None:
        c = self.app.ccfg
        try:
            server = ThreadingHTTPServer((c.host, c.port), _Handler)
        except OSError as exc:
            raise ConsoleError(f"console: cannot listen on {c.host}:{c.port}: {exc}") from exc
        server.daemon_threads = True
        server.console = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="console-http",
                                        daemon=True)
        self._thread.start()
        logger.info("console listening on http://%s:%d/", c.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- one request --------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: str, form: dict[str, str],
               token: str, address: str) -> tuple[Reply, Session | None]:
        """The reply, and the session whose cookie must be set (None: leave it)."""
        accounts = self.app.accounts
        session = accounts.session(token)
        new: Session | None = None
        if session is None:
            session = new = accounts.anonymous()
        user = accounts.account(session.username) if session.username else None
        if method == "POST" and not hmac.compare_digest(form.get("csrf", ""), session.csrf):
            accounts.audit(user.username if user else "-", "refused: bad CSRF token", path,
                           address=address)
            return Reply.text(403, "Forbidden: the form is stale. Reload the page."), new
        for m, pattern, need_user, fn in ROUTES:
            found = pattern.fullmatch(path)
            if found is None or m != method:
                continue
            if need_user and user is None:
                if path.startswith("/api/"):
                    return Reply.json(401, {"error": "sign in first"}), new
                return Reply.redirect("/login"), new
            req = Request(self.app, method, path, parse_qs(query), form, session, user,
                          address, found.groupdict())
            reply = fn(req)
            return reply, reply.session or new
        return Reply.text(404, "Not found"), new


class _Handler(BaseHTTPRequestHandler):
    server_version = "homevitals-console"

    @property
    def console(self) -> ConsoleServer:
        return self.server.console  # type: ignore[attr-defined,no-any-return]

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        if url.path.startswith("/static/"):
            self._static(url.path.removeprefix("/static/"))
            return
        self._run("GET", url.path, url.query, {})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        declared = self.headers.get("Content-Length") or "0"
        if not declared.isdigit() or int(declared) > MAX_BODY:
            self._send(Reply.text(413 if declared.isdigit() else 400, "Bad request"), None)
            return
        raw = self.rfile.read(int(declared)) if int(declared) else b""
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        if "X-CSRF-Token" in self.headers:
            form["csrf"] = self.headers["X-CSRF-Token"]
        url = urlsplit(self.path)
        self._run("POST", url.path, url.query, form)

    def _run(self, method: str, path: str, query: str, form: dict[str, str]) -> None:
        try:
            reply, session = self.console.handle(method, path, query, form, self._token(),
                                                 self.client_address[0])
        except Exception:  # the request's edge: one failing page never stops the console
            logger.exception("console: %s %s failed", method, path)
            reply, session = Reply.text(500, "Internal error (logged)"), None
        self._send(reply, session)

    def _token(self) -> str:
        try:
            jar = SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:
            return ""
        morsel = jar.get(COOKIE)
        return morsel.value if morsel is not None else ""

    def _static(self, name: str) -> None:
        if name not in _STATIC:
            self._send(Reply.text(404, "Not found"), None)
            return
        self._send(Reply(200, self.console.static[name], _STATIC[name]), None)

    def _send(self, reply: Reply, session: Session | None) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.ctype)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        if reply.location:
            self.send_header("Location", reply.location)
        if session is not None:
            self.send_header("Set-Cookie", self._cookie(session.token))
        self.end_headers()
        self.wfile.write(reply.body)

    def _cookie(self, token: str) -> str:
        secure = "; Secure" if self.console.app.ccfg.secure_cookies else ""
        return f"{COOKIE}={quote(token)}; Path=/; HttpOnly; SameSite=Strict{secure}"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        logger.debug("console: " + format, *args)

