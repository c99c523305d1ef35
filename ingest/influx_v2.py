"""InfluxDB 2.x API store through the official influxdb-client (``/api/v2/write``, Flux reads).

Also talks to InfluxDB 1.8+, whose forward-compatibility endpoint ``/api/v2/write`` maps
``bucket="database/retention-policy"`` (``"database"`` alone means the default policy) and takes
``token="username:password"`` (or any string when auth is disabled); ``org`` is ignored there.
Reads use Flux (``/api/v2/query``), which InfluxDB 1.8 serves only with ``flux-enabled = true``
and InfluxDB 1.7 and older not at all: read such servers through ``InfluxV1Store``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from homevitals.ingest.errors import StoreError, retryable_status
from homevitals.ingest.influx_v1 import public_url, server_error_text
from homevitals.ingest.points import from_ns, row_time_ns, rows_in_span, span_ns, time_ns, to_lines
from homevitals.ingest.store import Row, Storable

__all__ = ["InfluxV2Store", "create_bucket_command", "flux_string"]

logger = logging.getLogger(__name__)

# The generated WritePrecision class holds plain string constants but is the annotated type.
_NS = cast(WritePrecision, WritePrecision.NS)
# Flux record columns that describe the query rather than the point.
_FLUX_META = frozenset({"result", "table", "_start", "_stop", "_measurement", "_time"})


def flux_string(value: str) -> str:
    """Flux string literal (spec "String literals"): escape \\ and ", and "${" (interpolation)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


class InfluxV2Store:
    def __init__(
        self,
        url: str,
        token: str,
        org: str,
        bucket: str,
        timeout: float = 10.0,
        verify_ssl: bool = True,
        ssl_ca_cert: str | None = None,
    ) -> None:
        self.url = public_url(url)
        self.org = org
        self.bucket = bucket
        # The client takes milliseconds; it never retries synchronous writes (retries=False).
        self._client = InfluxDBClient(
            url=url,
            token=token,
            org=org,
            timeout=int(timeout * 1000),
            verify_ssl=verify_ssl,
            ssl_ca_cert=ssl_ca_cert,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, items: Sequence[Storable]) -> None:
        if not items:
            return
        body = to_lines(items)
        try:
            self._call(
                "/api/v2/write",
                lambda: self._write_api.write(
                    bucket=self.bucket, org=self.org, record=body, write_precision=_NS
                ),
            )
        except StoreError as exc:
            if exc.status != 404:
                raise
            raise StoreError(f"{exc}. {create_bucket_command(self.url, self.org, self.bucket)}",
                             retryable=False, status=404) from exc

    def query_readings(
        self, measurement: str, patient: str | None, start: datetime, end: datetime
    ) -> list[Row]:
        lo, hi = (from_ns(t) for t in span_ns(start, end))  # see InfluxV1Store.query_readings
        flux = (
            f"from(bucket: {flux_string(self.bucket)})"
            f" |> range(start: {_flux_time(lo)}, stop: {_flux_time(hi)})"
            f" |> filter(fn: (r) => r._measurement == {flux_string(measurement)})"
        )
        if patient is not None:
            flux += f" |> filter(fn: (r) => r.patient == {flux_string(patient)})"
        flux += (
            ' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
            ' |> group() |> sort(columns: ["_time"])'
        )
        query_api = self._client.query_api()
        tables = self._call("/api/v2/query", lambda: query_api.query(flux, org=self.org))
        rows = [_row(record.values) for table in tables for record in table.records]
        return rows_in_span(rows, start, end)

    def ping(self) -> str:
        """Health check: the server's version, or raise ``StoreError``."""
        return str(self._call("/ping", self._client.version))

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]  # influxdb-client leaves it bare

    def _call(self, path: str, fn: Any) -> Any:
        target = self.url + path
        try:
            return fn()
        except ApiException as exc:
            raise _api_error(target, exc) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StoreError(f"InfluxDB at {target}: no answer: {exc}", retryable=True) from exc


def create_bucket_command(url: str, org: str, bucket: str) -> str:
    """What creates the missing bucket: the influx CLI on 2.x; on 1.8's compatibility API a
    bucket "db/rp" is a 1.x database, created over its HTTP API."""
    if "/" in bucket:
        database = bucket.split("/")[0]
        return ("Create the database: curl -XPOST"
                f" '{url}/query' --data-urlencode 'q=CREATE DATABASE \"{database}\"'")
    return (f"Create the bucket: influx bucket create --name {bucket} --org {org}"
            f" --host {url} (or POST {url}/api/v2/buckets"
            f' with {{"orgID": "<org id>", "name": "{bucket}"}})')


def _api_error(target: str, exc: ApiException) -> StoreError:
    status = int(exc.status or 0)
    if status == 0:
        # influxdb-client reports TLS failures and unusable requests as status 0 (rest.py).
        return StoreError(f"InfluxDB at {target}: {exc.reason}", retryable=False)
    text = server_error_text(exc.body)
    return StoreError(
        f"InfluxDB at {target} answered HTTP {status}: {text}",
        retryable=retryable_status(status),
        status=status,
    )


def _flux_time(t: datetime) -> str:
    """A Flux date-time literal (RFC 3339, UTC)."""
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _row(values: dict[str, Any]) -> Row:
    # influxdb-client's datetime drops the point's last three digits; row_time_ns needs only the
    # microseconds to take the id's offset back out (ingest.points.item_time_ns).
    stored: datetime = values["_time"].astimezone(UTC)
    row: Row = {k: v for k, v in values.items() if k not in _FLUX_META and v is not None}
    row["time_ns"] = row_time_ns(str(values.get("_measurement", "")), time_ns(stored), row)
    row["time"] = from_ns(row["time_ns"])
    return row
