"""Real servers for tests: Mosquitto, InfluxDB 1.x, and InfluxDB 1.8's /api/v2/write in front of it.

Each helper runs the Debian binary on free 127.0.0.1 ports with its files in a directory of its
own, waits until the server answers, and stops it by PID. ``stop()``/``start()`` keep ports and
data, so a test can take a server away and bring it back. A missing binary is an error with the
install hint, never a skip: a test that silently skips proves nothing.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from broker_conf import BROKER_CONF, render_broker_conf

__all__ = [
    "Influxd",
    "Mosquitto",
    "ServerError",
    "V2CompatProxy",
    "free_port",
    "make_password_file",
]

HOST = "127.0.0.1"
MOSQUITTO_BIN = "/usr/sbin/mosquitto"
INFLUXD_BIN = "/usr/bin/influxd"


class ServerError(RuntimeError):
    """A test server is missing or would not start."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _require(binary: str, package: str) -> str:
    if not (os.path.exists(binary) or shutil.which(binary)):
        name = os.path.basename(binary)
        raise ServerError(
            f"{name} not found: install Debian's {package} package (apt-get install {package})"
            " — run scripts/test.sh"
        )
    return binary


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


class _Process:
    """A server process: started from argv, stopped by its PID only."""

    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.out"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _spawn(self, argv: list[str]) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def _wait_ready(self, ready: object, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            if callable(ready) and ready():
                return
            time.sleep(0.05)  # a wait-until poll: the server is ready
        self.stop()
        raise ServerError(f"{self.name} not ready after {timeout} s:\n{self.log()}")

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the server saves its state), then SIGKILL if it does not exit in time."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash, nothing saved."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def start(self) -> None:
        raise NotImplementedError


class Mosquitto(_Process):
    """Mosquitto 2.x on 127.0.0.1, started from configs/mosquitto/homevitals.conf: only the
    listeners' ports, the files' paths and log_dest are replaced (``render_broker_conf``).

    ``tls_files`` is (cafile, certfile, keyfile) for the file's second, TLS listener on
    ``tls_port``; without it that listener is left out. Without ``password_file`` anonymous
    clients are allowed (and no ACL applies). ``overrides`` replaces the value of a global
    setting of the file (e.g. a tiny ``max_queued_messages`` to make the broker drop);
    ``extra_config`` lines are appended (settings the file does not have).
    """

    name = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        tls_files: tuple[Path, Path, Path] | None = None,
        overrides: dict[str, str] | None = None,
        extra_config: tuple[str, ...] = (),
    ) -> None:
        super().__init__(workdir)
        self.binary = _require(MOSQUITTO_BIN, "mosquitto")
        self.port = port or free_port()
        self.tls_port = free_port() if tls_files else None
        self.conf_path = self.workdir / "mosquitto.conf"
        text = render_broker_conf(
            BROKER_CONF.read_text(encoding="utf-8"),
            port=self.port,
            tls_port=self.tls_port,
            persistence_location=f"{self.workdir}/",
            password_file=password_file,
            acl_file=acl_file,
            tls_files=tls_files,
            overrides=overrides or {},
        )
        extra = "".join(f"{line}\n" for line in extra_config)  # appended: global settings only
        self.conf_path.write_text(text + extra, encoding="utf-8")

    def start(self) -> None:
        self._spawn([self.binary, "-c", str(self.conf_path)])
        self._wait_ready(lambda: _accepts(self.port))


def make_password_file(path: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file (hashed by mosquitto_passwd) for ``password_file=``."""
    path.touch()
    for user, password in users.items():
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True)
    return path


class Influxd(_Process):
    """InfluxDB 1.x (Debian's 1.6.7) with its meta, data and WAL in ``workdir``."""

    name = "influxd"

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        rpc_port: int | None = None,
        *,
        auth_enabled: bool = False,
    ) -> None:
        super().__init__(workdir)
        self.binary = _require(INFLUXD_BIN, "influxdb")
        self.port = port or free_port()
        self.rpc_port = rpc_port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.conf_path = self.workdir / "influxdb.conf"
        self.conf_path.write_text(self._config(auth_enabled), encoding="utf-8")
        self._auth: str | None = None

    def _config(self, auth_enabled: bool) -> str:
        d = self.workdir
        return f"""\
reporting-disabled = true
bind-address = "{HOST}:{self.rpc_port}"
[meta]
  dir = "{d / 'meta'}"
  logging-enabled = false
[data]
  dir = "{d / 'data'}"
  wal-dir = "{d / 'wal'}"
  query-log-enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
[http]
  bind-address = "{HOST}:{self.port}"
  auth-enabled = {'true' if auth_enabled else 'false'}
  log-enabled = false
  pprof-enabled = false
[logging]
  level = "warn"
  suppress-logo = true
"""

    def start(self) -> None:
        self._spawn([self.binary, "-config", str(self.conf_path)])
        self._wait_ready(self._pings)

    def _pings(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as resp:
                return int(resp.status) == 204
        except OSError:
            return False

    def create_admin(self, username: str, password: str) -> None:
        """With auth enabled, InfluxDB 1.x lets the first admin be created unauthenticated."""
        self.query(f"CREATE USER \"{username}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES")
        self._auth = base64.b64encode(f"{username}:{password}".encode()).decode()

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"')

    def query(self, q: str, db: str | None = None) -> dict[str, object]:
        """InfluxQL over ``POST /query`` with ns epochs; raises ServerError on any error."""
        form = {"q": q, "epoch": "ns", **({"db": db} if db else {})}
        req = urllib.request.Request(
            f"{self.url}/query", data=urllib.parse.urlencode(form).encode(), method="POST"
        )
        if self._auth:
            req.add_header("Authorization", f"Basic {self._auth}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                body: dict[str, object] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise ServerError(f"query {q!r}: HTTP {exc.code} {exc.read()!r}") from exc
        results = body.get("results", [])
        errors = [r["error"] for r in results if isinstance(r, dict) and "error" in r]
        if errors:
            raise ServerError(f"query {q!r}: {errors}")
        return body


class V2CompatProxy:
    """What InfluxDB 1.8 adds in front of 1.x storage, for a 1.6 server: ``/api/v2/write``
    (bucket "db/rp", ``Authorization: Token user:password``), ``/ping`` and ``/health``.

    Limit: ``/api/v2/query`` (Flux) is not translated, so tests read v2 writes back through the
    v1 ``/query`` of the same influxd. When influxd is down the proxy answers 503.
    """

    def __init__(self, upstream_url: str, port: int | None = None) -> None:
        self.upstream = upstream_url.rstrip("/")
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        handler = type("Handler", (_ProxyHandler,), {"upstream": self.upstream})
        self._server = ThreadingHTTPServer((HOST, self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="v2-compat-proxy", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as influxdb-client's urllib3 pool expects
    upstream = ""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == "/health":
            body = {"name": "influxdb", "message": "ready for queries and writes",
                    "status": "pass", "checks": [], "version": "1.8.10"}
            self._answer(200, json.dumps(body).encode(), "application/json")
        elif path == "/ping":
            self._forward("GET", "/ping", None, {})
        else:
            self._answer(404, b'{"code":"not found","message":"not found"}', "application/json")

    def do_HEAD(self) -> None:
        self._forward("HEAD", "/ping", None, {})

    def do_POST(self) -> None:
        split = urllib.parse.urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if split.path != "/api/v2/write":
            self._answer(404, b'{"code":"not found","message":"not found"}', "application/json")
            return
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        query = dict(urllib.parse.parse_qsl(split.query))
        # InfluxDB 1.8 bucket2dbrp: "db/rp", or "db" alone for the default retention policy.
        db, _, rp = query.get("bucket", "").partition("/")
        if not db:
            self._answer(404, b'{"error":"bucket name is not in db/rp form"}', "application/json")
            return
        precision = {"ns": "n", "us": "u"}.get(query.get("precision", "ns"), query.get("precision"))
        params = {"db": db, "precision": precision or "n", **({"rp": rp} if rp else {})}
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Token ") and ":" in auth:  # 1.8: "Token username:password"
            headers["Authorization"] = "Basic " + base64.b64encode(auth[6:].encode()).decode()
        self._forward("POST", "/write?" + urllib.parse.urlencode(params), body, headers)

    def _forward(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> None:
        req = urllib.request.Request(self.upstream + target, data=body, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                self._answer(resp.status, resp.read(), resp.headers.get("Content-Type"), resp)
        except urllib.error.HTTPError as exc:
            self._answer(exc.code, exc.read(), exc.headers.get("Content-Type"), exc)
        except OSError as exc:
            msg = json.dumps({"error": f"upstream influxd unavailable: {exc}"}).encode()
            self._answer(503, msg, "application/json")

    def _answer(self, status: int, body: bytes, ctype: str | None, src: object = None) -> None:
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for name in ("X-Influxdb-Version", "X-Influxdb-Build", "X-Influxdb-Error"):
            value = getattr(src, "headers", {}).get(name) if src is not None else None
            if value:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
