"""A care-team console under test: a real ``homevitals console`` process on a free port, its
accounts made with ``homevitals console adduser``, and a small HTTP client with a cookie.

Two doctors with a patient each (and a third patient of doctor A whose name holds a
``<script>``); alerts enter the ledger the alerts daemon's way (``Escalator.on_decision``).
"""

from __future__ import annotations

import http.client
import re
import secrets
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from daemons import HOMEVITALS, Daemon, write_config
from servers import free_port

from homevitals.alerts.escalation import Escalator
from homevitals.alerts.ledger import Ledger
from homevitals.ingest.sqlite_store import SqliteStore
from homevitals.roots.console_wiring import add_account
from homevitals.vocab.clock import SystemClock
from homevitals.vocab.config import load_config
from homevitals.vocab.readings import AlertDecision, FieldValue, Reading
from homevitals.vocab.units import Unit

DOC_A, DOC_B, MANAGER = "+15550100001", "+15550100002", "+15550100003"
PASSWORD = "correct horse battery"
EVIL = "<script>window.pwned=1</script>Eva"


def site_config(tmp: Path, mqtt_port: int = 1883, **alerts: Any) -> dict[str, Any]:
    def team(doctor: str) -> list[dict[str, str]]:
        return [{"name": f"Dr. {doctor[-1]}", "role": "family_doctor", "phone": doctor},
                {"name": "Maja Kos", "role": "health_manager", "phone": MANAGER}]

    return {
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        "store": {"kind": "sqlite", "path": str(tmp / "store.sqlite")},
        "homes": [
            {"id": "home-a", "timezone": "Europe/Ljubljana",
             "patients": [{"id": "ana", "name": "Ana Novak", "care_team": team(DOC_A)},
                          {"id": "eva", "name": EVIL, "care_team": team(DOC_A)}],
             "devices": [{"id": "cgm-1", "kind": "cgm", "patient": "ana"},
                         {"id": "bp-1", "kind": "blood_pressure", "patient": "ana"}]},
            {"id": "home-b", "timezone": "Europe/Ljubljana",
             "patients": [{"id": "bor", "name": "Bor Zupan", "care_team": team(DOC_B)}]},
        ],
        "alerts": {"outbox_path": str(tmp / "ledger.sqlite"), "sweep_seconds": 1, **alerts},
        "console": {"port": free_port(), "db_path": str(tmp / "console.sqlite"),
                    "poll_seconds": 1},
    }


def adduser(config: Path, username: str, role: str, phone: str | None = None,
            password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    extra = ["--phone", phone] if phone else []
    return subprocess.run(
        [*HOMEVITALS, "console", "-c", str(config), "adduser", "--username", username,
         "--name", username.title(), "--role", role, *extra],
        input=password + "\n", capture_output=True, text=True, timeout=60)


class Site:
    def __init__(self, tmp: Path, mqtt_port: int = 1883, **alerts: Any) -> None:
        self.tmp = tmp
        self.data = site_config(tmp, mqtt_port, **alerts)
        self.config = write_config(tmp / "homevitals.yaml", self.data)
        self.cfg = load_config(self.config)
        self.port = self.data["console"]["port"]
        self.daemon: Daemon | None = None

    def start(self, env: dict[str, str] | None = None) -> Site:
        # What `homevitals console adduser` does, in this process: three interpreter starts
        # fewer per site (the command itself is tested in test_console_security).
        for name, role, phone in (("doca", "doctor", DOC_A), ("docb", "doctor", DOC_B),
                                  ("admin", "admin", None)):
            add_account(self.cfg, SystemClock(), name, name.title(), role, phone, PASSWORD)
        self.daemon = Daemon("console", self.config, self.tmp, env=env)
        self.daemon.wait_log("ready: console", 60)  # a loaded 2-core machine: slow imports
        return self

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.terminate()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fire(self, patient: str = "ana", severity: str = "high", value: float = 2.9,
             reason: str = "Night-time low glucose") -> str:
        """A decision recorded the alerts daemon's way; its alert id."""
        home = "home-b" if patient == "bor" else "home-a"
        now = datetime.now(UTC)
        d = AlertDecision(
            alert_id="a" + secrets.token_hex(15), state="firing", home=home,  # type: ignore[arg-type]
            patient=patient, rule="night-low-glucose", severity=severity,  # type: ignore[arg-type]
            reason=reason, time=now, measurement="glucose", field="glucose", value=value,
            unit="mmol/L", observed_at=now)
        ledger = Ledger(self.cfg.alerts.outbox_path)
        try:
            Escalator(self.cfg, ledger, SystemClock()).on_decision(d)
        finally:
            ledger.close()
        return d.alert_id

    def glucose(self, patient: str = "ana", hours: int = 24, every_minutes: int = 5) -> None:
        """CGM readings up to now into the embedded store, as ingest writes them."""
        store = SqliteStore(self.cfg.store.path)
        now = datetime.now(UTC)
        readings = []
        for i in range(hours * 60 // every_minutes):
            t = now - timedelta(minutes=every_minutes * i)
            value = 6.5 + 2.5 * ((i % 48) / 48)
            readings.append(Reading(
                f"r{patient}{i}", "home-a", patient, "cgm-1", "glucose",  # type: ignore[arg-type]
                {"glucose": FieldValue(round(value, 1), Unit.MMOL_PER_L)}, t, t))
        store.write(readings)
        store.close()


class Client:
    """One browser's worth of HTTP: a session cookie, and the page's CSRF token."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookie = ""
        self.csrf = ""

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                csrf: bool = True) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Cookie": f"hv_session={self.cookie}"} if self.cookie else {}
        body = None
        if form is not None:
            form = {**form, **({"csrf": self.csrf} if csrf and self.csrf else {})}
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        got = dict(resp.getheaders())
        conn.close()
        found = re.match(r"hv_session=([^;]+)", got.get("Set-Cookie", ""))
        if found:
            self.cookie = found.group(1)
        token = re.search(r'<meta name="csrf" content="([^"]+)"', text)
        if token:
            self.csrf = token.group(1)
        return resp.status, got, text

    def get(self, path: str) -> tuple[int, dict[str, str], str]:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str], csrf: bool = True
             ) -> tuple[int, dict[str, str], str]:
        return self.request("POST", path, form, csrf)

    def sign_in(self, username: str, password: str = PASSWORD) -> int:
        self.get("/login")
        status, _, _ = self.post("/login", {"username": username, "password": password})
        if status == 303:
            self.get("/inbox")  # the signed-in session's CSRF token
        return status
