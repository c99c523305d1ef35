"""InfluxDB 1.x HTTP API store: ``POST /write``, ``POST /query`` (InfluxQL), ``GET /ping``.

The same endpoints exist as compatibility APIs in InfluxDB 2.x and 3.x, so this store works there
too (with ``username``/``password`` set to a user and token as those servers document).

One ``write()`` is one HTTP request. InfluxDB 1.x may keep the well-formed points of a batch it
answers with "partial write"; our lines come from ``ingest.points`` so that should not happen,
and if it does a retry rewrites the same points at the same timestamps, which is harmless.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import urllib3

from homevitals.ingest.errors import StoreError, retryable_status
from homevitals.ingest.points import from_ns, row_time_ns, rows_in_span, span_ns, to_lines
from homevitals.ingest.store import Row, Storable

__all__ = [
    "InfluxV1Store",
    "create_database_command",
    "public_url",
    "quote_identifier",
    "quote_string",
    "rows_from_series",
    "server_error_text",
]

logger = logging.getLogger(__name__)


def quote_identifier(name: str) -> str:
    """InfluxQL double-quoted identifier (spec: "Identifiers"): backslash-escape \\ and "."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """InfluxQL single-quoted string literal: backslash-escape \\ and '."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxV1Store:
    def __init__(
        self,
        url: str,
        database: str,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        verify_tls: bool | str = True,
        create_database: bool = False,
        create_missing: bool = False,
    ) -> None:
        """``create_database``: create it now (tests, tools). ``create_missing``
        (``store.create_database``): create it when a write finds it missing."""
        parts = urlsplit(url)
        if parts.username is not None and username is None:
            username, password = parts.username, parts.password
        # Credentials travel in a header, never in the URL, so no message or log can leak them.
        self.url = public_url(url)
        self.database = database
        self.retention_policy = retention_policy
        self._headers: dict[str, str] = {}
        if username is not None:
            auth = f"{username}:{password or ''}"
            self._headers.update(urllib3.make_headers(basic_auth=auth))
        self._pool = urllib3.PoolManager(
            retries=False,
            timeout=urllib3.Timeout(total=timeout),
            cert_reqs="CERT_NONE" if verify_tls is False else "CERT_REQUIRED",
            ca_certs=verify_tls if isinstance(verify_tls, str) else None,
        )
        self.create_missing = create_missing
        self._auth = username is not None
        if create_database:
            self.create_database()

    def write(self, items: Sequence[Storable]) -> None:
        if not items:
            return
        params = {"db": self.database, "precision": "ns"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        body = to_lines(items).encode("utf-8")
        headers = {**self._headers, "Content-Type": "text/plain; charset=utf-8"}
        try:
            self._request("POST", "/write", params, body=body, headers=headers)
        except StoreError as exc:
            if exc.status != 404 or "database not found" not in str(exc):
                raise
            self._create_missing(exc)
            self._request("POST", "/write", params, body=body, headers=headers)

    def _create_missing(self, exc: StoreError) -> None:
        """The database does not exist: create it if allowed, else say exactly what to run."""
        run = create_database_command(self.url, self.database, self._auth)
        if not self.create_missing:
            raise StoreError(f"{exc}. Create the database: {run}"
                             " (or set store.create_database: true)",
                             retryable=False, status=exc.status) from exc
        logger.warning("InfluxDB database %s does not exist: creating it"
                       " (store.create_database: true)", self.database)
        try:
            self.create_database()
        except StoreError as failed:
            raise StoreError(f"database {self.database} does not exist and creating it failed"
                             f" ({failed}); an InfluxDB admin can run: {run}",
                             retryable=failed.retryable, status=failed.status) from failed

    def query_readings(
        self, measurement: str, patient: str | None, start: datetime, end: datetime
    ) -> list[Row]:
        source = quote_identifier(measurement)
        if self.retention_policy:
            source = f"{quote_identifier(self.retention_policy)}.{source}"
        lo, hi = span_ns(start, end)  # whole seconds: a point sits anywhere in its item's second
        where = f"time >= {lo} AND time < {hi}"
        if patient is not None:
            where += f" AND {quote_identifier('patient')} = {quote_string(patient)}"
        results = self.query(f"SELECT * FROM {source} WHERE {where}")
        rows = [row for series in results[0].get("series", []) for row in rows_from_series(series)]
        return rows_in_span(rows, start, end)

    def query(self, q: str) -> list[dict[str, Any]]:
        """Run InfluxQL against the database; return ``results`` or raise on a statement error."""
        fields = {"q": q, "db": self.database, "epoch": "ns"}
        resp = self._request("POST", "/query", {}, fields=fields, headers=self._headers)
        results: list[dict[str, Any]] = json.loads(resp.data)["results"]
        for result in results:
            if "error" in result:
                # InfluxDB answers 200 and puts a failed statement's error in the result.
                raise StoreError(
                    f"InfluxDB query at {self.url}/query failed: {result['error']}",
                    retryable=False,
                )
        return results

    def create_database(self) -> None:
        # CREATE DATABASE is idempotent in InfluxDB 1.x.
        self.query(f"CREATE DATABASE {quote_identifier(self.database)}")

    def ping(self) -> str:
        """Health check: the server's version (``X-Influxdb-Version``), or raise ``StoreError``."""
        resp = self._request("GET", "/ping", {}, headers=self._headers)
        return resp.headers.get("X-Influxdb-Version", "")

    def close(self) -> None:
        self._pool.clear()

    def _request(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        *,
        body: bytes | None = None,
        fields: dict[str, str] | None = None,
        headers: dict[str, str],
    ) -> urllib3.BaseHTTPResponse:
        target = self.url + path
        url = f"{target}?{urlencode(params)}" if params else target
        try:
            if fields is not None:
                resp = self._pool.request(
                    method, url, fields=fields, encode_multipart=False, headers=headers
                )
            else:
                resp = self._pool.request(method, url, body=body, headers=headers)
        except urllib3.exceptions.SSLError as exc:
            # A certificate problem does not heal by itself: configuration must change.
            raise StoreError(f"InfluxDB at {target}: TLS failure: {exc}", retryable=False) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StoreError(f"InfluxDB at {target}: no answer: {exc}", retryable=True) from exc
        if resp.status >= 300:
            raise _status_error(target, resp.status, resp.data)
        return resp


def create_database_command(url: str, database: str, auth: bool = False) -> str:
    """The one command that creates ``database`` (InfluxDB 1.x HTTP API; Debian's influxdb
    package has no CLI for it). CREATE DATABASE is idempotent; it needs an admin user when
    authentication is on."""
    user = " -u ADMIN_USER:PASSWORD" if auth else ""
    statement = f"q=CREATE DATABASE {quote_identifier(database)}"
    return f"curl -XPOST{user} '{url}/query' --data-urlencode '{statement}'"


def public_url(url: str) -> str:
    """The URL without user info, query or trailing slash: safe to put in messages."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def server_error_text(body: bytes | str | None) -> str:
    """InfluxDB 1.x answers ``{"error": ...}``, 2.x ``{"code": ..., "message": ...}``."""
    if not body:
        return "(empty body)"
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        obj = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if isinstance(obj, dict):
        return str(obj.get("error") or obj.get("message") or text)[:500]
    return text.strip()[:500]


def _status_error(target: str, status: int, body: bytes) -> StoreError:
    message = f"InfluxDB at {target} answered HTTP {status}: {server_error_text(body)}"
    return StoreError(message, retryable=retryable_status(status), status=status)


def rows_from_series(series: dict[str, Any]) -> list[Row]:
    """One row per point: the item's own time (the point's, less its id's offset: see
    ``ingest.points``) as aware UTC datetime and int ns; nulls (absent fields) left out."""
    columns: list[str] = series["columns"]
    rows = []
    for values in series.get("values", []):
        row: Row = {}
        stored_ns = 0
        for name, value in zip(columns, values, strict=True):
            if value is None:
                continue
            if name == "time":
                stored_ns = int(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                row[name] = float(value)  # JSON drops ".0"; every field we write is a float
            else:
                row[name] = value
        row["time_ns"] = row_time_ns(str(series.get("name", "")), stored_ns, row)
        row["time"] = from_ns(row["time_ns"])
        rows.append(row)
    return rows
