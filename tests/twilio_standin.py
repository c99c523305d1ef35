"""A local stand-in for Twilio's REST API, held to Twilio's own OpenAPI description.

The Twilio cloud cannot run here, so tests drive the real ``twilio`` client against this server
instead. Every request is checked against ``tests/data/contracts/twilio_api_v2010.json`` (from
Twilio's twilio-oai project): the operation must exist, HTTP Basic auth must be present (the
spec's ``accountSid_authToken`` scheme), path/query/form parameters must be defined by the
operation and valid once coerced from their form strings. A request that breaks the contract gets
a Twilio-style 400 and lands in ``violations``; tests assert that list is empty. Responses the
stand-in builds are validated against the spec too, so the stand-in itself cannot drift.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twilio_contract import (
    CONTRACT_PATH,
    MESSAGE_BY_SID,
    MESSAGES,
    OpenApiContract,
    _Match,
    load_contract,
)

__all__ = [
    "CONTRACT_PATH",
    "MESSAGES",
    "MESSAGE_BY_SID",
    "TEST_ACCOUNT_SID",
    "TEST_AUTH_TOKEN",
    "OpenApiContract",
    "RecordedRequest",
    "SentMessage",
    "TwilioStandin",
    "Violation",
    "load_contract",
]


TEST_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TEST_AUTH_TOKEN = "standin-auth-token-0001"  # noqa: S105 - a test fixture, not a secret

# Codes for canned answers, from twilio.com/docs/api/errors. Twilio answers a malformed request
# with one of several 21xxx codes; the stand-in uses 20001 for every contract rejection.
_DEFAULT_ERRORS = {
    400: (20001, "Invalid parameter"),
    401: (20003, "Authenticate"),
    404: (20404, "The requested resource was not found"),
    405: (20004, "Method not allowed"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    501: (20501, "Not implemented by the Twilio stand-in"),
    503: (20503, "Service Unavailable"),
}


@dataclass(frozen=True)
class SentMessage:
    """A message the stand-in accepted: what a real phone would have received."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    body: str | None
    messaging_service_sid: str | None
    status_callback: str | None
    created_at: datetime


@dataclass(frozen=True)
class Violation:
    """A request (or a stand-in response) that breaks the OpenAPI contract."""

    method: str
    path: str
    problems: tuple[str, ...]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    status: int


@dataclass(frozen=True)
class _Scripted:
    status: int | None  # None: answer normally, after the delay
    code: int | None
    message: str | None
    delay: float


@dataclass(frozen=True)
class _Reply:
    status: int
    payload: dict[str, Any]
    problems: tuple[str, ...] = ()


class TwilioStandin:
    """Threaded HTTP server on 127.0.0.1 (free port). Use as a context manager::

    with TwilioStandin() as standin:  # or yield it from a pytest fixture
        notifier = TwilioNotifier(..., api_base_url=standin.base_url)
        standin.fail_next(status=400, code=21211, message="...")
    """

    def __init__(
        self,
        account_sid: str = TEST_ACCOUNT_SID,
        auth_token: str = TEST_AUTH_TOKEN,
        contract: OpenApiContract | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.contract = contract or load_contract()
        self.messages: list[SentMessage] = []
        self.violations: list[Violation] = []
        self.requests: list[RecordedRequest] = []
        self._script: deque[_Scripted] = deque()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> TwilioStandin:
        server = _Server(self)
        self._server = server
        # A short poll interval: shutdown() waits up to one interval, and every test stops one.
        serve = functools.partial(server.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, name="twilio-standin")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> TwilioStandin:
        return self.start()

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "stand-in is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- scripting --------------------------------------------------------------------------
    def fail_next(
        self, status: int, code: int | None = None, message: str | None = None, delay: float = 0.0
    ) -> None:
        """Answer the next valid request with this Twilio error (queued, one per request)."""
        with self._lock:
            self._script.append(_Scripted(status, code, message, delay))

    def delay_next(self, seconds: float) -> None:
        """Answer the next valid request normally, but only after ``seconds``."""
        with self._lock:
            self._script.append(_Scripted(None, None, None, seconds))

    # -- request handling (called from server threads) --------------------------------------
    def handle(self, method: str, target: str, headers: Message, raw: bytes) -> _Reply:
        url = urlsplit(target)
        reply = self._answer(method, url.path, url.query, headers, raw)
        with self._lock:
            self.requests.append(RecordedRequest(method, url.path, reply.status))
            if reply.problems:
                self.violations.append(Violation(method, url.path, tuple(reply.problems)))
        return reply

    def _answer(self, method: str, path: str, query: str, headers: Message, raw: bytes) -> _Reply:
        match = self.contract.find(method, path)
        if match is None or match.operation is None:
            problem = f"no operation {method} {path} in the API description"
            return _error(404 if match is None else 405, problems=[problem])
        form, rejection = self._admit(match, query, headers, raw)
        if rejection is not None:
            return rejection
        scripted = self._next_scripted()
        if scripted is not None:
            time.sleep(scripted.delay)  # a scripted slow answer from "Twilio"
            if scripted.status is not None:
                return _error(scripted.status, scripted.code, scripted.message)
        reply = self._serve(match.template, method, match.params, form, query)
        # Error answers are not described by the spec; successes must match it exactly.
        ok = reply.status < 300
        problems = self.contract.check_response(match, reply.status, reply.payload) if ok else []
        if problems:
            problems = [f"stand-in response: {problem}" for problem in problems]
            return _error(500, message="; ".join(problems), problems=problems)
        return reply

    def _admit(
        self, match: _Match, query: str, headers: Message, raw: bytes
    ) -> tuple[dict[str, Any], _Reply | None]:
        """The coerced form, or the reply refusing a request that breaks the contract."""
        auth, problems = self._check_auth(headers)
        if problems:  # Twilio answers 401 to a request without credentials
            return {}, _error(401, problems=problems)
        form, problems = self.contract.check_request(match, query, headers.get("Content-Type"), raw)
        if problems:
            return {}, _error(400, message="; ".join(problems), problems=problems)
        if auth != (match.params.get("AccountSid"), self.auth_token):
            return {}, _error(401)  # well-formed, wrong credentials: an answer, not a violation
        return form, None

    def _check_auth(self, headers: Message) -> tuple[tuple[str, str] | None, list[str]]:
        scheme, _, encoded = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None, ["no HTTP Basic Authorization (security scheme accountSid_authToken)"]
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, ["Authorization header is not valid Basic credentials"]
        if not sep:
            return None, ["Basic credentials lack the ':' between username and password"]
        return (user, password), []

    def _next_scripted(self) -> _Scripted | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _serve(
        self,
        template: str,
        method: str,
        params: dict[str, str],
        form: dict[str, Any],
        query: str = "",
    ) -> _Reply:
        if (template, method) == (MESSAGES, "POST"):
            return _Reply(201, self._create_message(params["AccountSid"], form))
        if (template, method) == (MESSAGES, "GET"):
            return _Reply(200, self._list_messages(params["AccountSid"], query))
        if (template, method) == (MESSAGE_BY_SID, "GET"):
            return self._fetch_message(params["Sid"])
        return _error(501, message=f"the stand-in does not serve {method} {template}")

    def _create_message(self, account_sid: str, form: dict[str, Any]) -> dict[str, Any]:
        sent = SentMessage(
            sid="SM" + secrets.token_hex(16),
            account_sid=account_sid,
            to=form["To"],
            from_=form.get("From"),
            body=form.get("Body"),
            messaging_service_sid=form.get("MessagingServiceSid"),
            status_callback=form.get("StatusCallback"),
            created_at=datetime.now(UTC),
        )
        with self._lock:
            self.messages.append(sent)
        return _message_resource(sent, num_media=len(form.get("MediaUrl", [])))

    def _list_messages(self, account_sid: str, query: str) -> dict[str, Any]:
        """GET Messages.json: newest first, filtered by To / From; one page (PageSize)."""
        q = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        page_size = int(q.get("PageSize", "50"))
        with self._lock:
            found = [m for m in self.messages if m.account_sid == account_sid]
        found = [
            m for m in found if q.get("To", m.to) == m.to and q.get("From", m.from_) == m.from_
        ]
        if any(k.startswith("DateSent") for k in q):
            # The stand-in's messages stay "queued" and never get a date_sent, so no DateSent
            # filter can match them.
            found = []
        found = sorted(found, key=lambda m: m.created_at, reverse=True)[:page_size]
        uri = f"{self.base_url}/2010-04-01/Accounts/{account_sid}/Messages.json"
        return {
            "end": max(len(found) - 1, 0),
            "first_page_uri": f"{uri}?{query}",
            "next_page_uri": None,
            "page": 0,
            "page_size": page_size,
            "previous_page_uri": None,
            "start": 0,
            "uri": f"{uri}?{query}",
            "messages": [_message_resource(m, num_media=0) for m in found],
        }

    def _fetch_message(self, sid: str) -> _Reply:
        with self._lock:
            sent = next((m for m in self.messages if m.sid == sid), None)
        if sent is None:
            return _error(404, message=f"The requested resource /Messages/{sid}.json was not found")
        return _Reply(200, _message_resource(sent, num_media=0))


def _message_resource(sent: SentMessage, num_media: int) -> dict[str, Any]:
    """The ``api.v2010.account.message`` resource, every property present (as Twilio does)."""
    uri = f"/2010-04-01/Accounts/{sent.account_sid}/Messages/{sent.sid}"
    created = format_datetime(sent.created_at, usegmt=False)  # RFC 2822, as Twilio sends
    # With only a Messaging Service, Twilio picks the sender later and reports "accepted".
    status = "queued" if sent.from_ else "accepted"
    return {
        "account_sid": sent.account_sid,
        "api_version": "2010-04-01",
        "body": sent.body or "",
        "date_created": created,
        "date_sent": None,
        "date_updated": created,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": sent.from_,
        "messaging_service_sid": sent.messaging_service_sid,
        "num_media": str(num_media),
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sent.sid,
        "status": status,
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": sent.to,
        "uri": f"{uri}.json",
    }


def _error(
    status: int,
    code: int | None = None,
    message: str | None = None,
    problems: list[str] | None = None,
) -> _Reply:
    default_code, default_message = _DEFAULT_ERRORS.get(status, (20000 + status, "Error"))
    code = default_code if code is None else code
    payload = {
        "code": code,
        "message": message or default_message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return _Reply(status, payload, tuple(problems or ()))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, standin: TwilioStandin) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.standin = standin


class _Handler(BaseHTTPRequestHandler):
    server_version = "TwilioStandin/1.0"

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        assert isinstance(self.server, _Server)
        reply = self.server.standin.handle(self.command, self.path, self.headers, raw)
        data = json.dumps(reply.payload).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests); nothing left to tell it

    do_GET = do_POST = do_DELETE = do_PUT = _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        pass  # requests are kept in TwilioStandin.requests instead of stderr noise


# -- the contract: Twilio's OpenAPI 3.0 description, checked with jsonschema -------------------
