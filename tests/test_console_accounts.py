"""Console accounts on the injected clock: the lockout ends after its time, sessions expire, the
stored password is a salted scrypt hash; and the console reads a real InfluxDB store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from console_site import DOC_A, MANAGER, PASSWORD, Client, Site
from daemons import TestClock, wait_until

from homevitals.alerts.ledger import Ledger
from homevitals.console.accounts import Accounts, Role
from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.readings import FieldValue, Reading
from homevitals.vocab.units import Unit


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[tuple[Accounts, SimulatedClock]]:
    clock = SimulatedClock(datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    a = Accounts(tmp_path / "console.sqlite", clock, session_hours=8, lockout_minutes=15)
    a.add("doca", "Dr. A", Role.DOCTOR, PASSWORD, DOC_A, "test")
    yield a, clock
    a.close()


def test_the_lockout_ends_after_fifteen_minutes(accounts: tuple[Accounts, SimulatedClock]) -> None:
    a, clock = accounts
    for _ in range(5):
        assert a.sign_in("doca", "wrong password", None, "127.0.0.1") is None
    clock.advance(timedelta(minutes=14, seconds=59))
    assert a.sign_in("doca", PASSWORD, None, "127.0.0.1") is None
    clock.advance(timedelta(seconds=2))
    assert a.sign_in("doca", PASSWORD, None, "127.0.0.1") is not None


def test_sessions_expire_and_sign_in_rotates_them(
    accounts: tuple[Accounts, SimulatedClock],
) -> None:
    a, clock = accounts
    anonymous = a.anonymous()
    signed = a.sign_in("doca", PASSWORD, anonymous, "127.0.0.1")
    assert signed is not None and signed.token != anonymous.token
    assert a.session(anonymous.token) is None
    assert signed.csrf != anonymous.csrf
    clock.advance(timedelta(hours=7, minutes=59))
    assert a.session(signed.token) is not None
    clock.advance(timedelta(minutes=2))
    assert a.session(signed.token) is None


def test_passwords_and_tokens_are_not_stored_in_clear(
    accounts: tuple[Accounts, SimulatedClock], tmp_path: Path,
) -> None:
    a, _ = accounts
    session = a.sign_in("doca", PASSWORD, None, "127.0.0.1")
    assert session is not None
    raw = (tmp_path / "console.sqlite").read_bytes() + (
        tmp_path / "console.sqlite-wal").read_bytes()
    assert PASSWORD.encode() not in raw and session.token.encode() not in raw
    with sqlite3.connect(tmp_path / "console.sqlite") as db:
        stored = db.execute("SELECT password FROM accounts").fetchone()[0]
    assert stored.startswith("scrypt$32768$8$1$")


@pytest.fixture
def influx_site(tmp_path: Path, influxd: Any, influx_db: str) -> Iterator[Site]:
    site = Site(tmp_path)
    site.data["store"] = {"kind": "influx_v1", "url": influxd.url, "database": influx_db}
    site.data["console"]["secure_cookies"] = True
    site.config.write_text(json.dumps(site.data), encoding="utf-8")  # JSON is YAML
    now = datetime.now(UTC)
    store = InfluxV1Store(influxd.url, influx_db)
    store.write([Reading(
        f"g{i}", "home-a", "ana", "cgm-1", "glucose",  # type: ignore[arg-type]
        {"glucose": FieldValue(5.0 + i / 10, Unit.MMOL_PER_L)},
        now - timedelta(minutes=5 * (11 - i)), now) for i in range(12)] + [Reading(
        "b1", "home-a", "ana", "cgm-1", "battery",  # type: ignore[arg-type]
        {"battery": FieldValue(12, Unit.PERCENT)}, now - timedelta(hours=3), now)] + [Reading(
        "old", "home-a", "ana", "bp-1", "blood_pressure",  # type: ignore[arg-type]
        {"systolic": FieldValue(141, Unit.MMHG), "diastolic": FieldValue(88, Unit.MMHG)},
        now - timedelta(days=3), now)])
    store.close()
    yield site.start()
    site.stop()


def test_the_patient_list_reads_the_last_reading_from_influxdb(influx_site: Site) -> None:
    c = Client(influx_site.port)
    _, headers, _ = c.get("/login")
    assert "; Secure" in headers["Set-Cookie"]  # console.secure_cookies: behind a TLS proxy
    assert c.sign_in("doca") == 303
    patients = {p["id"]: p for p in json.loads(c.get("/api/patients")[2])["patients"]}
    assert set(patients) == {"ana", "eva"}
    assert [(r["measurement"], r["value"]) for r in patients["ana"]["readings"]] == [
        ("glucose", "6.1 mmol/L"), ("blood_pressure", "141/88 mmHg")]
    listed = c.get("/patients")[2]
    assert "cgm-1: battery 12 %" in listed and "bp-1: silent" in listed
    assert "141/88 mmHg</b> <span class=\"age\">3 days ago" in listed
    page = c.get("/patients/ana")[2]
    assert "12 (CGM)" in page and "/patients/ana/figures/daily.png" in page
    status, headers, png = c.request("GET", "/patients/ana/figures/daily.png")
    assert status == 200 and headers["Content-Type"] == "image/png"


def test_an_overdue_follow_up_goes_to_the_health_manager_by_sms_once(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.data["console"].update(follow_up_hours={"high": 1}, follow_up_check_seconds=0.3)
    site.config.write_text(json.dumps(site.data), encoding="utf-8")
    clock = TestClock(tmp_path)  # the console's: moved past the follow-up's due time
    site.start(env=clock.env())
    try:
        alert = site.fire("ana", severity="high")

        def overdue_sms(patient: str = "ana") -> list[dict[str, object]]:
            ledger = Ledger(site.cfg.alerts.outbox_path)
            rows = [h for h in ledger.history(patient) if h["kind"] == "follow-up-overdue"]
            ledger.close()
            return rows

        clock.advance(61 * 60)
        sms = wait_until("the overdue SMS in the outbox", overdue_sms, timeout=20)
        assert [(s["recipient"], s["role"]) for s in sms] == [(MANAGER, "health_manager")]
        assert sms[0]["alert_id"] == alert
        assert "is not done. Assigned to Dr. 1 (family_doctor)" in str(sms[0]["body"])
        # Bor's follow-up, overdue an hour after his alert, is the control: once his SMS is
        # out, the checker has run again since Ana's, and told nobody of hers a second time.
        site.fire("bor", severity="high")
        clock.advance(61 * 60)
        wait_until("Bor's overdue SMS", lambda: overdue_sms("bor"), timeout=20)
        assert len(overdue_sms()) == 1
        c = Client(site.port)
        c.sign_in("doca")
        assert "OVERDUE since" in c.get("/followups")[2]
    finally:
        site.stop()
