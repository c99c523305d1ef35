"""Prometheus metrics and health endpoints, the same for every daemon.

Each daemon serves, on its own ``<stage>.metrics`` address (loopback by default):
``/metrics`` (Prometheus text format), ``/healthz`` (liveness: 200 while every thread and task it
declared is alive and making progress) and ``/readyz`` (readiness: 200 while every condition it
stated holds: broker session, subscription, store ...), 503 otherwise. Both bodies list each
worker or condition on a line of its own, ``name: ok`` or ``name: what is wrong``
(``homevitals.infra.runtime`` decides them).

Stages count with plain attributes and ``collections.Counter`` as they work; a collector reads
them when Prometheus scrapes, so the hot paths carry no metrics library calls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["HealthServer", "Metric", "StageCollector", "Verdict", "counter", "gauge"]

logger = logging.getLogger(__name__)


def _family(
    kind: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    doc: str,
    value: float | Mapping[str, float],
    label: str,
) -> Metric:
    if isinstance(value, Mapping):
        family = kind(name, doc, labels=[label])
        for key, v in sorted(value.items()):
            family.add_metric([str(key)], float(v))
        return family
    return kind(name, doc, value=float(value))


def counter(name: str, doc: str, value: float | Mapping[str, float], label: str = "") -> Metric:
    """A counter, or a family of counters labelled ``label`` when ``value`` is a mapping."""
    return _family(CounterMetricFamily, name, doc, value, label)


def gauge(name: str, doc: str, value: float | Mapping[str, float], label: str = "") -> Metric:
    """A gauge, or a family of gauges labelled ``label`` when ``value`` is a mapping."""
    return _family(GaugeMetricFamily, name, doc, value, label)


def _build_info() -> Metric:
    """``homevitals_build_info{version="0.1.0"} 1``: which release each daemon runs."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("homevitals")
    except PackageNotFoundError:  # run from a checkout that was never installed
        release = "unknown"
    info = GaugeMetricFamily("homevitals_build_info", "the homevitals release running",
                             labels=["version"])
    info.add_metric([release], 1.0)
    return info


class StageCollector(Collector):
    """Calls ``read()`` at scrape time; ``read`` returns the stage's metrics."""

    def __init__(self, read: Callable[[], Iterable[Metric]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        return [_build_info(), *self._read()]


class Verdict(NamedTuple):
    """An answer of /healthz or /readyz: all well or not, and one line per worker or condition."""

    ok: bool
    lines: list[str]

    def body(self, good: str, bad: str) -> bytes:
        return "\n".join([good if self.ok else bad, *self.lines, ""]).encode()


class HealthServer:
    def __init__(
        self,
        host: str,
        port: int,
        read: Callable[[], Iterable[Metric]],
        ready: Callable[[], Verdict],
        live: Callable[[], Verdict],
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StageCollector(read))
        self.ready = ready
        self.live = live
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path == "/metrics":
                    self._answer(200, generate_latest(server.registry), "text/plain; version=0.0.4")
                elif self.path == "/healthz":
                    v = server.live()
                    self._answer(200 if v.ok else 503, v.body("ok", "not alive"))
                elif self.path == "/readyz":
                    v = server.ready()
                    self._answer(200 if v.ok else 503, v.body("ready", "not ready"))
                else:
                    self._answer(404, b"not found\n")

            def _answer(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                logger.debug("http %s", format % args)

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="health", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        logger.info("metrics and health on http://%s:%d/", self._httpd.server_address[0], self.port)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

