"""Real PostgreSQL 15 for tests: one server, or a Patroni cluster (etcd + primary + synchronous
replica), each on free 127.0.0.1 ports with its files in a directory of its own, stopped by PID.

PostgreSQL refuses to run as root, so the servers run as Debian's ``postgres`` user in a
directory made for them under /tmp (pytest's own tmp directories are private to root). A missing
binary is an error with the install hint, never a skip (as tests/servers.py).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from servers import HOST, ServerError, _accepts, _require, free_port

__all__ = ["Etcd", "PatroniCluster", "Postgres", "ServerError"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RUN_AS = "postgres"


def _own_dir(prefix: str) -> Path:
    """A directory the ``postgres`` user owns (and only it: initdb insists on 0700)."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    user = pwd.getpwnam(RUN_AS)
    os.chown(d, user.pw_uid, user.pw_gid)
    return d


def _pg(binary: str) -> str:
    return _require(str(PG_BIN / binary), "postgresql-15")


class _Proc:
    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log_path = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str], *, as_postgres: bool = False) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                user=RUN_AS if as_postgres else None, start_new_session=True,
            )

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _wait(self, what: str, ready: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            if ready():
                return
            time.sleep(0.1)
        raise ServerError(f"{self.name}: {what} not after {timeout} s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL of the process group (Patroni's postgres children die with it: a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGINT)  # PostgreSQL: fast shutdown; Patroni: stop
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class Postgres(_Proc):
    """One PostgreSQL 15 server with trust authentication on 127.0.0.1 only."""

    name = "postgres"

    def __init__(self) -> None:
        super().__init__(_own_dir("hv-pg-"))
        self.port = free_port()
        self.data = self.workdir / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/postgres"

    def start(self) -> Postgres:
        if not self.data.exists():
            subprocess.run(
                [_pg("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                 "-E", "UTF8", "--no-instructions"],
                check=True, capture_output=True, user=RUN_AS, cwd=self.workdir,
            )
        self._spawn([_pg("postgres"), "-D", str(self.data), "-p", str(self.port),
                     "-c", f"listen_addresses={HOST}",
                     "-c", f"unix_socket_directories={self.workdir}"], as_postgres=True)
        self._wait("accepting connections", lambda: _accepts(self.port))
        return self

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


class Etcd(_Proc):
    """A one-member etcd 3.4: Patroni's store (DCS)."""

    name = "etcd"

    def __init__(self) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix="hv-etcd-")))
        self.port, self.peer_port = free_port(), free_port()
        _require("etcd", "etcd-server")

    def start(self) -> Etcd:
        client, peer = f"http://{HOST}:{self.port}", f"http://{HOST}:{self.peer_port}"
        self._spawn(["etcd", "--name", "e1", "--data-dir", str(self.workdir / "data"),
                     "--listen-client-urls", client, "--advertise-client-urls", client,
                     "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                     "--initial-cluster", f"e1={peer}", "--log-level", "warn"])
        self._wait("serving clients", lambda: _http_ok(f"{client}/health"))
        return self

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class PatroniNode(_Proc):
    def __init__(self, scope: str, name: str, etcd: Etcd) -> None:
        self.name = name
        super().__init__(_own_dir(f"hv-{name}-"))
        self.port, self.api_port = free_port(), free_port()
        self.config = self.workdir / "patroni.yml"
        self.config.write_text(yaml.safe_dump(self._conf(scope, etcd)))
        os.chown(self.config, pwd.getpwnam(RUN_AS).pw_uid, -1)

    def _conf(self, scope: str, etcd: Etcd) -> dict[str, Any]:
        trust = ["host all all 127.0.0.1/32 trust", "host replication all 127.0.0.1/32 trust"]
        return {
            "scope": scope, "name": self.name,
            "restapi": {"listen": f"{HOST}:{self.api_port}",
                        "connect_address": f"{HOST}:{self.api_port}"},
            "etcd3": {"hosts": [f"{HOST}:{etcd.port}"]},
            "bootstrap": {
                # Patroni docs, "Replication modes": synchronous_mode keeps every commit on the
                # replica too, so a failover loses no committed transaction.
                "dcs": {"ttl": 10, "loop_wait": 1, "retry_timeout": 4,
                        "maximum_lag_on_failover": 0, "synchronous_mode": True,
                        "postgresql": {"use_pg_rewind": True, "parameters": {
                            "wal_level": "replica", "hot_standby": "on",
                            "max_wal_senders": 5, "max_replication_slots": 5,
                            "wal_log_hints": "on"}}},
                "initdb": [{"encoding": "UTF8"}, {"auth": "trust"}],
                "pg_hba": trust,
            },
            "postgresql": {
                "listen": f"{HOST}:{self.port}", "connect_address": f"{HOST}:{self.port}",
                "data_dir": str(self.workdir / "data"), "bin_dir": str(PG_BIN),
                "pgpass": str(self.workdir / "pgpass"),
                "authentication": {"superuser": {"username": "postgres", "password": "x"},
                                   "replication": {"username": "postgres", "password": "x"}},
                "parameters": {"unix_socket_directories": str(self.workdir)},
                "pg_hba": trust,
            },
        }

    def start(self) -> PatroniNode:
        self._spawn(["patroni", str(self.config)], as_postgres=True)
        return self

    def role(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.api_port}/patroni", timeout=1) as r:
                return str(json.loads(r.read())["role"])
        except (urllib.error.URLError, OSError, KeyError, ValueError):
            return None

    def kill(self) -> None:
        """kill -9 of the node: Patroni and its postmaster (which Patroni starts in a session
        of its own, so that it outlives Patroni: postmaster.pid names it)."""
        pid_file = self.workdir / "data" / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        super().kill()
        if postmaster is not None:
            try:
                os.kill(postmaster, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


class PatroniCluster:
    """etcd, and two Patroni nodes: a primary and a synchronous replica."""

    def __init__(self) -> None:
        self.etcd = Etcd().start()
        scope = f"hv{os.getpid()}"
        self.nodes = [PatroniNode(scope, f"pg{i}", self.etcd) for i in (1, 2)]

    def start(self, timeout: float = 90.0) -> PatroniCluster:
        self.nodes[0].start()
        self.nodes[0]._wait("primary", lambda: self.nodes[0].role() in ("master", "primary"),
                            timeout)
        self.nodes[1].start()
        self.nodes[1]._wait("synchronous replica", self.sync_ready, timeout)
        return self

    def sync_ready(self) -> bool:
        try:
            url = f"http://{HOST}:{self.primary().api_port}/cluster"
            with urllib.request.urlopen(url, timeout=1) as r:
                members = json.loads(r.read())["members"]
        except (urllib.error.URLError, OSError, ServerError, KeyError, ValueError):
            return False
        return any(m.get("role") == "sync_standby" and m.get("state") in ("running", "streaming")
                   for m in members)

    def primary(self) -> PatroniNode:
        for n in self.nodes:
            if n.running and n.role() in ("master", "primary"):
                return n
        raise ServerError("no primary")

    @property
    def url(self) -> str:
        """libpq's multi-host string: whichever node is the primary takes the writes."""
        hosts = "&".join(f"host={HOST}:{n.port}" for n in self.nodes)
        return f"postgresql+psycopg://postgres@/postgres?{hosts}&target_session_attrs=read-write"

    def cleanup(self) -> None:
        for n in self.nodes:
            n.cleanup()
        self.etcd.cleanup()
