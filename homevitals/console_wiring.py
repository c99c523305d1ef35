"""Composition root of ``homevitals console``: the console wired to the alert ledger, the
escalator, the store and the report figures.

The console stage never imports another stage; this module (like ``cli``) may. The inbox reads
the alerts daemon's ledger through its public functions (``history``, ``alert``, ``told``) and
acknowledges through ``Escalator.acknowledge``, the function an SMS ``ACK 4821`` and
``homevitals alerts ack`` call, so the escalation stops the same way and the ledger's log says
who acknowledged. The patient page draws ``reports.figures`` from ``reports.metrics``, so the
page and the printed report agree.
"""

from __future__ import annotations

import logging
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from homevitals import wire
from homevitals.alerts.escalation import Escalator
from homevitals.alerts.ledger import AlertRow, Ledger, Note
from homevitals.clock import Clock
from homevitals.config import DEVICE_MEASUREMENTS, CareRole, Config
from homevitals.console.accounts import Accounts, Role
from homevitals.console.app import ConsoleApp
from homevitals.console.followups import FollowUps
from homevitals.console.ports import (
    DeviceStatus,
    InboxAlert,
    LastReading,
    PatientStatus,
    Record,
    RecordRow,
    RecordSection,
)
from homevitals.console.web import ConsoleServer
from homevitals.ingest.store import Store
from homevitals.reports import figures
from homevitals.reports.bp_metrics import bp_summary, prepare_bp, vital_stats
from homevitals.reports.data import Period, load
from homevitals.reports.metrics import agp, cgm_devices, deduplicate, glucose_metrics
from homevitals.units import FIELD_UNITS

__all__ = [
    "LedgerBook", "StoreRecords", "add_account", "build_console", "open_accounts", "run_console",
]

logger = logging.getLogger(__name__)

_CLOSED = ("acknowledged", "resolved")
_SHOWN = ("glucose", "blood_pressure", "heart_rate", "spo2", "temperature", "weight")


class LedgerBook:
    """The console's view of the alert ledger (``AlertBook``)."""

    def __init__(self, cfg: Config, ledger: Ledger, escalator: Escalator) -> None:
        self.cfg, self.ledger, self.escalator = cfg, ledger, escalator

    def _alerts(self, patient: str | None, keep: Callable[[dict[str, object]], bool]
                = lambda _r: True) -> list[InboxAlert]:
        """Alerts from the ledger's history rows that ``keep`` accepts; only those are read
        in full, so a long history costs one query, not one per alert ever opened."""
        ids = list(dict.fromkeys(
            str(r["alert_id"]) for r in self.ledger.history(patient) if keep(r)))
        rows = [r for r in (self.ledger.alert(i) for i in ids) if r is not None]
        return [self._view(r) for r in rows]

    def _view(self, r: AlertRow) -> InboxAlert:
        d = r.decoded()
        open_ = r.state not in _CLOSED
        told = tuple(f"{n} ({role})" for _, n, role in self.ledger.told(r.alert_id)) if open_ \
            else ()
        return InboxAlert(
            r.alert_id, r.home, r.patient, r.rule, r.severity, r.state, d.reason,
            wire.parse_time(r.opened_at, "opened_at"), d.value, d.unit, d.observed_at,
            r.step + 1,
            wire.parse_time(r.next_step_at, "next_step_at") if r.next_step_at else None,
            told, r.acked_at, r.acked_by)

    def open_alerts(self) -> list[InboxAlert]:
        return [a for a in self._alerts(None, lambda r: r["alert_state"] not in _CLOSED)
                if a.is_open]

    def all_alerts(self, since: datetime) -> list[InboxAlert]:
        t = wire.format_time(since)
        return self._alerts(None, lambda r: str(r["opened_at"]) >= t)

    def patient_alerts(self, patient: str) -> list[InboxAlert]:
        return sorted(self._alerts(patient), key=lambda a: a.opened_at, reverse=True)

    def acknowledge(self, alert_id: str, by: str, phone: str | None) -> bool:
        row = self.ledger.alert(alert_id)
        if row is None or row.acked_at or row.resolved or not row.ack_code:
            return False
        done = self.escalator.acknowledge(row.ack_code, by, "the console", phone=phone)
        return done is not None and done.alert_id == alert_id

    def tell_health_manager(self, alert_id: str, body: str) -> int:
        row = self.ledger.alert(alert_id)
        if row is None:
            return 0
        _, patient = self.cfg.patient(row.patient)
        now = self.escalator.clock.now()
        notes = [Note(m.phone, m.name, str(m.role), body, "follow-up-overdue", row.step, now)
                 for m in patient.care_team if m.role == CareRole.HEALTH_MANAGER]
        return self.ledger.add(alert_id, notes, now,
                               entry="follow-up overdue: the health manager is told")


def _text(measurement: str, row: dict[str, Any]) -> str:
    if measurement == "blood_pressure":
        return f"{row.get('systolic', 0):.0f}/{row.get('diastolic', 0):.0f} mmHg"
    units = FIELD_UNITS.get(measurement, {})
    field = measurement if measurement in units else next(iter(units), measurement)
    value = row.get(field)
    return f"{value:g} {units.get(field, '')}".strip() if isinstance(value, int | float) else "?"


class StoreRecords:
    """Last readings, device health and the dynamic record (``Records``), from the store."""

    def __init__(self, cfg: Config, store: Store, history: Callable[[str], Any],
                 clock: Clock, cache_seconds: float = 15.0) -> None:
        self.cfg, self.store, self.history, self.clock = cfg, store, history, clock
        self.cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _cached(self, key: tuple[str, str], make: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.cache_seconds:
            return hit[1]
        value = make()
        with self._lock:
            self._cache[key] = (time.monotonic(), value)
        return value

    def status(self, patients: list[str]) -> dict[str, PatientStatus]:
        return {p: self._cached(("status", p), partial(self._status, p)) for p in patients}

    def _status(self, patient: str) -> PatientStatus:
        c = self.cfg.console
        now = self.clock.now()
        start, end = now - timedelta(days=c.lookback_days), now + timedelta(minutes=5)
        home, _ = self.cfg.patient(patient)
        readings, seen, battery = [], {}, {}  # type: ignore[var-annotated]
        # The last day first (a CGM's 288 rows, not 14 days of them); further back only when
        # that finds nothing. A device missing from the recent window is silent either way.
        recent = now - max(timedelta(days=1), timedelta(hours=c.silent_hours))
        # Only what the patient's devices measure: each measurement is a query or two.
        made = {str(m) for d in home.devices if d.patient == patient
                for m in DEVICE_MEASUREMENTS[d.kind]}
        for m in (x for x in (*_SHOWN, "battery") if x in made):
            rows = self.store.query_readings(m, patient, max(start, recent), end)
            if not rows and recent > start:
                rows = self.store.query_readings(m, patient, start, recent)
            for r in rows:
                seen[r.get("device")] = max(seen.get(r.get("device"), r["time"]), r["time"])
                if m == "battery":
                    battery[r.get("device")] = r.get("battery")
            if rows and m != "battery":
                readings.append(LastReading(m, _text(m, rows[-1]), rows[-1]["time"]))
        devices = []
        for d in home.devices:
            if d.patient != patient or not DEVICE_MEASUREMENTS[d.kind]:
                continue  # buttons send nothing until pressed: silence is their normal state
            last = seen.get(d.id)
            level = battery.get(d.id)
            devices.append(DeviceStatus(
                d.id, str(d.kind), last,
                level, last is None or now - last > timedelta(hours=c.silent_hours),
                isinstance(level, int | float) and level < c.low_battery_percent))
        return PatientStatus(patient, tuple(readings), tuple(devices))

    def record(self, patient: str) -> Record:
        rec, _ = self._cached(("record", patient), lambda: self._record(patient))
        return rec  # type: ignore[no-any-return]

    def figure(self, patient: str, key: str) -> bytes | None:
        _, pngs = self._cached(("record", patient), lambda: self._record(patient))
        return pngs.get(key)  # type: ignore[no-any-return]

    def _record(self, patient: str) -> tuple[Record, dict[str, bytes]]:
        home, _ = self.cfg.patient(patient)
        today = self.clock.now().astimezone(home.zone).date()
        period = Period(today - timedelta(days=self.cfg.console.lookback_days - 1), today,
                        home.zone)
        data = load(self.store, self.history, patient, period)
        pngs: dict[str, bytes] = {}
        with tempfile.TemporaryDirectory(prefix="homevitals-console-") as tmp:
            def draw(key: str, fn: Callable[[Path], Path]) -> tuple[str, str]:
                pngs[key] = fn(Path(tmp) / f"{key}.png").read_bytes()
                return key, _CAPTIONS[key]
            sections = (
                _glucose(data.glucose, period, draw), _bp(data.bp, period, draw),
                _vitals(data.heart_rate, data.spo2, draw))
        text = f"{period.first} to {period.last} ({period.days} days, {home.timezone})"
        return Record(text, sections), pngs


_CAPTIONS = {"agp": "Ambulatory glucose profile", "daily": "Daily glucose",
             "bp": "Home blood pressure", "vitals": "Heart rate and SpO2"}
Draw = Callable[[str, Callable[[Path], Path]], tuple[str, str]]


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} %"


def _glucose(df: Any, period: Period, draw: Draw) -> RecordSection:
    m = glucose_metrics(df, period.start, period.end, period.zone)
    if not m.readings:
        return RecordSection("Glucose", (), notes=m.caveats)
    rows = [RecordRow("readings", f"{m.readings} ({'CGM' if m.cgm else 'meter'})"),
            RecordRow("mean", f"{m.mean_mmol:.1f} mmol/L" if m.mean_mmol else "-"),
            RecordRow("time in range 3.9-10.0", _pct(m.in_range), (m.in_range or 0) < 70),
            RecordRow("below 3.9", _pct(m.below_3_9), (m.below_3_9 or 0) >= 4),
            RecordRow("below 3.0", _pct(m.below_3_0), (m.below_3_0 or 0) >= 1),
            RecordRow("above 10.0", _pct(m.above_10_0), (m.above_10_0 or 0) >= 25),
            RecordRow("CV", _pct(m.cv_percent), (m.cv_percent or 0) > 36)]
    if m.gmi_percent is not None:
        rows.append(RecordRow("GMI", f"{m.gmi_percent:.1f} %"))
    figs = []
    profile = agp(df, period.zone)
    if profile.curves:
        figs.append(draw("agp", lambda p: figures.agp_figure(profile, m, p)))
    unique, _ = deduplicate(df)
    figs.append(draw("daily", lambda p: figures.daily_figure(unique, cgm_devices(unique),
                                                             period, p)))
    notes = m.caveats + (() if profile.curves else (profile.reason,))
    return RecordSection("Glucose", tuple(rows), tuple(figs), notes)


def _bp(df: Any, period: Period, draw: Draw) -> RecordSection:
    rows_df, _ = prepare_bp(df, period.zone)
    if rows_df.empty:
        return RecordSection("Blood pressure", (), notes=("No blood pressure readings.",))
    s = bp_summary(df, period.zone)
    rows = tuple(
        RecordRow(f"mean, {st.label}", "-" if st.systolic is None else
                  f"{st.systolic:.0f}/{st.diastolic:.0f} mmHg ({st.readings} readings)",
                  bool(st.mean_is_high))
        for st in s.unflagged)
    fig = draw("bp", lambda p: figures.bp_figure(rows_df, p))
    return RecordSection("Blood pressure", rows, (fig,),
                         (f"{s.flagged} readings flagged by the device are left out.",)
                         if s.flagged else ())


def _vitals(hr: Any, spo2: Any, draw: Draw) -> RecordSection:
    rows = []
    for name, df, field, unit in (("heart rate", hr, "heart_rate", "bpm"),
                                  ("SpO2", spo2, "spo2", "%")):
        st = vital_stats(df, field)
        if st is not None:
            rows.append(RecordRow(name, f"mean {st.mean:.0f} {unit} ({st.low:.0f}-{st.high:.0f},"
                                        f" {st.readings} readings)"))
    if not rows:
        return RecordSection("Heart rate and SpO2", (), notes=("No readings.",))
    fig = draw("vitals", lambda p: figures.vitals_figure(hr, spo2, p))
    return RecordSection("Heart rate and SpO2", tuple(rows), (fig,))


# --- wiring ----------------------------------------------------------------------------------
def open_accounts(cfg: Config, clock: Clock) -> Accounts:
    c = cfg.console
    return Accounts(c.db_path, clock, session_hours=c.session_hours,
                    lockout_failures=c.lockout_failures, lockout_minutes=c.lockout_minutes)


def build_console(cfg: Config, store: Store, clock: Clock) -> tuple[ConsoleServer, Ledger]:
    ledger = Ledger(cfg.alerts.ledger_url or cfg.alerts.outbox_path)
    book = LedgerBook(cfg, ledger, Escalator(cfg, ledger, clock))
    records = StoreRecords(cfg, store, ledger.history, clock)
    hours = {str(k): v for k, v in cfg.console.follow_up_hours.items()}
    tasks = FollowUps(cfg.console.db_path, clock, hours)
    app = ConsoleApp(cfg, open_accounts(cfg, clock), book, records, tasks, clock)
    return ConsoleServer(app), ledger


def run_console(cfg: Config, store: Store, clock: Clock) -> None:
    server, ledger = build_console(cfg, store, clock)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    worker = threading.Thread(target=_overdue_worker, args=(server.app, stop),
                              name="console-followups", daemon=True)
    worker.start()
    logger.info("ready: console at http://%s:%d/", cfg.console.host, server.port)
    stop.wait()
    worker.join(timeout=10)
    server.stop()
    server.app.accounts.close()
    server.app.followups.close()
    ledger.close()


def _overdue_worker(app: ConsoleApp, stop: threading.Event) -> None:
    """Every ``follow_up_check_seconds``: overdue follow-ups go to the health manager by SMS."""
    while not stop.wait(app.ccfg.follow_up_check_seconds):
        try:
            app.escalate_overdue()
        except Exception:  # the worker's edge: a locked ledger now must not end the checks
            logger.exception("checking overdue follow-ups failed; trying again later")


def add_account(cfg: Config, clock: Clock, username: str, name: str, role: str,
                phone: str | None, password: str) -> None:
    """``homevitals console adduser``: the first admin, or any account, from the terminal."""
    accounts = open_accounts(cfg, clock)
    try:
        accounts.add(username, name, Role(role), password, phone, "(command line)")
    finally:
        accounts.close()
