"""Twilio's webhooks into the alerts daemon: inbound SMS (ACK replies) and delivery reports.

Twilio signs every webhook request with the account's auth token (``X-Twilio-Signature``, HMAC-SHA1
over the full URL and the sorted POST parameters; twilio.com/docs/usage/security). The URL Twilio
signed is the public one (behind the TLS proxy), so it comes from ``alerts.webhook.public_url``,
never from the request's Host header. A request whose signature does not verify is answered 403,
logged and counted, and changes nothing.

Paths, under the path of ``public_url``: ``/inbound`` (the phone number's "A message comes in"
webhook) and ``/status`` (the ``StatusCallback`` of outgoing messages).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

from twilio.request_validator import RequestValidator

from homevitals.alerts.errors import AlertsError
from homevitals.infra.runtime import Worker, thread_worker
from homevitals.vocab.config import WebhookConfig

__all__ = ["Webhook", "twiml"]

logger = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


def twiml(message: str | None) -> bytes:
    """A TwiML answer: a reply SMS to the sender, or nothing."""
    inner = f"<Message>{escape(message)}</Message>" if message else ""
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>'.encode()


class Webhook:
    def __init__(
        self,
        cfg: WebhookConfig,
        auth_token: str,
        on_inbound: Callable[[dict[str, str]], str | None],
        on_status: Callable[[dict[str, str]], None],
    ) -> None:
        self.cfg = cfg
        self.validator = RequestValidator(auth_token)
        self.base_path = urlsplit(cfg.public_url).path.rstrip("/")
        self.on_inbound = on_inbound
        self.on_status = on_status
        self.forged = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            server = ThreadingHTTPServer((self.cfg.host, self.cfg.port), _Handler)
        except OSError as exc:
            raise AlertsError(
                f"alerts.webhook: cannot listen on {self.cfg.host}:{self.cfg.port}: {exc}"
            ) from exc
        server.daemon_threads = True
        server.webhook = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="twilio-webhook", daemon=True
        )
        self._thread.start()
        logger.info(
            "Twilio webhook listening on %s:%d (public %s)",
            self.cfg.host,
            self.cfg.port,
            self.cfg.public_url,
        )

    def worker(self) -> Worker:
        """The HTTP server's thread, for the runner."""
        return thread_worker("twilio-webhook", lambda: self._thread)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def dispatch(self, path: str, query: str, signature: str, raw: bytes) -> tuple[int, bytes]:
        suffix = path[len(self.base_path) :] if path.startswith(self.base_path) else ""
        if suffix not in ("/inbound", "/status"):
            return 404, b""
        params = dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))
        url = self.cfg.public_url + suffix + (f"?{query}" if query else "")
        if not signature or not self.validator.validate(url, params, signature):
            self.forged += 1
            logger.warning(
                "rejected a %s webhook request with a bad signature (from %r, %d so far)",
                suffix[1:],
                params.get("From", "?"),
                self.forged,
            )
            return 403, b""
        if suffix == "/status":
            self.on_status(params)
            return 204, b""
        return 200, twiml(self.on_inbound(params))


class _Handler(BaseHTTPRequestHandler):
    server_version = "homevitals-alerts"

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        declared = self.headers.get("Content-Length") or "0"
        if not declared.isdigit():  # "-1" would read until the client hangs up
            self._answer(400, b"")
            return
        length = int(declared)
        if length > MAX_BODY:
            self._answer(413, b"")
            return
        raw = self.rfile.read(length) if length else b""
        webhook: Webhook = self.server.webhook  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        try:
            status, body = webhook.dispatch(
                url.path, url.query, self.headers.get("X-Twilio-Signature", ""), raw
            )
        except Exception:  # the webhook's supervisor: one bad request never stops the daemon
            logger.exception("webhook request to %s failed", url.path)
            status, body = 500, b""
        self._answer(status, body)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        logger.debug("webhook: " + format, *args)
