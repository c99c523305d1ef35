"""Reports a doctor reads: consensus glucose metrics, AGP, home BP with flagged readings, alerts.

Expected values are worked by hand in the comments; the end-to-end tests go through the real
SQLite store, a real influxd, the real alert ledger and the ``homevitals report`` command.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import yaml
from matplotlib.image import imread
from servers import Influxd

from homevitals.alerts.ledger import Ledger
from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.ingest.sqlite_store import SqliteStore
from homevitals.reports.bp_metrics import bp_summary
from homevitals.reports.metrics import agp, glucose_metrics
from homevitals.roots.cli import main
from homevitals.vocab.config import Config, parse_config
from homevitals.vocab.readings import AlertDecision, FieldValue, Measurement, Reading
from homevitals.vocab.units import Unit

ZONE = ZoneInfo("Europe/Ljubljana")  # UTC+1 in March before the switch on the 29th
FIRST, LAST = date(2026, 3, 2), date(2026, 3, 15)  # 14 local days
DOCTOR = "+15550100001"


# --- synthetic data ---------------------------------------------------------------------------


def frame(rows: list[tuple[datetime, float]], device: str = "cgm-1") -> pd.DataFrame:
    return pd.DataFrame({"time": pd.to_datetime([t for t, _ in rows], utc=True),
                         "device": device, "glucose": [v for _, v in rows], "flags": ""})


def glucose(patient: str, device: str, at: datetime, value: float, n: int) -> Reading:
    return Reading(reading_id=f"{patient}-g{n}", home="h1", patient=patient, device=device,
                   measurement=Measurement.GLUCOSE,
                   fields={"glucose": FieldValue(value, Unit.MMOL_PER_L)}, time=at, received_at=at)


def bp(patient: str, at: datetime, sys_: float, dia: float, n: int,
       flags: tuple[str, ...] = ()) -> Reading:
    fields = {"systolic": FieldValue(sys_, Unit.MMHG), "diastolic": FieldValue(dia, Unit.MMHG),
              "mean_arterial": FieldValue((sys_ + 2 * dia) / 3, Unit.MMHG),
              "pulse": FieldValue(70.0, Unit.BPM)}
    return Reading(reading_id=f"{patient}-bp{n}", home="h1", patient=patient, device="bp-1",
                   measurement=Measurement.BLOOD_PRESSURE, fields=fields, time=at, received_at=at,
                   flags=flags)


def cgm_day_value(slot: int) -> float:
    """One local day of 288 five-minute slots: 00:00-00:55 at 3.5 (12 readings), 01:00-20:55
    alternating 6.0 / 8.0 (240), 21:00-23:55 at 12.0 (36)."""
    if slot < 12:
        return 3.5
    return (6.0 if slot % 2 == 0 else 8.0) if slot < 252 else 12.0


def cgm_readings(patient: str) -> list[Reading]:
    out = []
    for d in range((LAST - FIRST).days + 1):
        midnight = datetime.combine(FIRST + timedelta(days=d), datetime.min.time(), ZONE)
        for slot in range(288):
            at = (midnight + timedelta(minutes=5 * slot)).astimezone(UTC)
            out.append(glucose(patient, "cgm-1", at, cgm_day_value(slot), len(out)))
    return out


# Local (day offset, time, systolic, diastolic, flags): morning, evening and one flagged reading.
BP_PLAN = [
    (0, "07:00", 150, 90, ()), (0, "08:00", 140, 80, ()),
    (1, "07:30", 170, 100, ("body_movement",)),
    (0, "20:00", 130, 80, ()), (1, "21:00", 120, 75, ()), (1, "14:00", 125, 78, ()),
]


def bp_readings(patient: str) -> list[Reading]:
    return [bp(patient, datetime.combine(FIRST + timedelta(days=d), datetime.strptime(
        hhmm, "%H:%M").time(), ZONE).astimezone(UTC), s, di, i, fl)
        for i, (d, hhmm, s, di, fl) in enumerate(BP_PLAN)]


# Meter: days 1, 2 and 4 of a 4-day period (day 3 missing), four readings a day.
METER_DAY = [("08:00", 5.0), ("12:30", 8.0), ("18:00", 11.0), ("22:00", 3.5)]


def meter_readings(patient: str, days: tuple[int, ...] = (0, 1, 3)) -> list[Reading]:
    return [glucose(patient, "meter-1", datetime.combine(FIRST + timedelta(days=d),
                    datetime.strptime(hhmm, "%H:%M").time(), ZONE).astimezone(UTC), v, d * 10 + i)
            for d in days for i, (hhmm, v) in enumerate(METER_DAY)]


def config(tmp: Path, store: dict[str, Any], bo_name: str = "Bo O'Neil <Sr> & Co") -> Config:
    team = [{"name": "Dr. Marko Kranjc", "role": "family_doctor", "phone": DOCTOR}]
    data = {
        "store": store,
        "homes": [{"id": "h1", "timezone": "Europe/Ljubljana", "patients": [
            {"id": "ana", "name": "Ana Novak", "care_team": team},
            {"id": "bo", "name": bo_name, "care_team": team}]}],
        "alerts": {"outbox_path": str(tmp / "ledger.sqlite")},
    }
    return parse_config(yaml.safe_dump(data), "test-config")


def report(cfg: Config, tmp: Path, capsys: pytest.CaptureFixture[str], *args: str
           ) -> tuple[int, str, str]:
    """``homevitals report -c CONFIG ARGS --out tmp/out``: exit code, stdout, stderr."""
    cfg_path = tmp / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")), encoding="utf-8")
    code = main(["--log-level", "WARNING", "report", "-c", str(cfg_path), *args,
                 "--out", str(tmp / "out")])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def record_alert(path: Path) -> None:
    at = datetime.combine(FIRST + timedelta(days=1), datetime.min.time(), ZONE) + timedelta(
        hours=3, minutes=10)
    decision = AlertDecision(alert_id="a-1", state="firing", home="h1", patient="ana",
                             rule="night-low-glucose", severity="high", reason="Night-time low",
                             time=at)
    ledger = Ledger(path)
    ledger.record(decision, [(DOCTOR, "Dr. Marko Kranjc", "family_doctor", "low glucose")], at)
    ledger.acknowledge("a-1", "Dr. Marko Kranjc", "SMS reply", at + timedelta(minutes=7))
    ledger.close()


# --- metrics, by hand ------------------------------------------------------------------------


def test_cgm_metrics_count_duplicates_once_and_report_the_gap() -> None:
    # One UTC day, a reading every 5 min except 06:00-08:55 (36 missing): 288 - 36 = 252.
    start = datetime(2024, 3, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=5 * i) for i in range(288)
             if not 72 <= i < 108]
    # 12 x 2.8, 12 x 3.5, 180 x 7.0, 36 x 12.0, 12 x 15.0 = 252 readings
    values = [2.8] * 12 + [3.5] * 12 + [7.0] * 180 + [12.0] * 36 + [15.0] * 12
    rows = list(zip(times, values, strict=True))
    df = frame(rows + rows[100:104])  # 4 duplicates: same time, same device
    m = glucose_metrics(df, start, start + timedelta(days=1), ZoneInfo("UTC"))

    assert (m.readings, m.duplicates, m.cgm) == (252, 4, True)
    assert m.below_3_0 == pytest.approx(100 * 12 / 252)  # 4.76 %
    assert m.below_3_9 == pytest.approx(100 * 24 / 252)  # 9.52 %, includes the 12 below 3.0
    assert m.in_range == pytest.approx(100 * 180 / 252)  # 71.43 %
    assert m.above_10_0 == pytest.approx(100 * 48 / 252)  # 19.05 %
    assert m.above_13_9 == pytest.approx(100 * 12 / 252)  # 4.76 %
    # mean = (33.6 + 42 + 1260 + 432 + 180) / 252 = 1947.6 / 252 = 7.728571 mmol/L
    assert m.mean_mmol == pytest.approx(7.728571, abs=1e-6)
    # GMI = 3.31 + 0.02392 x (7.728571 x 18.0156 = 139.23485 mg/dL) = 3.31 + 3.33050 = 6.6405 %
    assert m.gmi_percent == pytest.approx(6.6405, abs=1e-4)
    # sum x^2 = 94.08 + 147 + 8820 + 5184 + 2700 = 16945.08; SS = 16945.08 - 1947.6^2/252
    # = 1892.9143; SD = sqrt(1892.9143 / 251) = 2.746178; CV = 2.746178 / 7.728571 = 35.533 %
    assert m.sd_mmol == pytest.approx(2.746178, abs=1e-5)
    assert m.cv_percent == pytest.approx(35.533, abs=1e-3)
    assert m.cv_reliable
    assert m.coverage_percent == pytest.approx(87.5)  # 252 / (1440 min / 5 min = 288)
    # the only silence over 30 min: 05:55 (slot 71) to 09:00 (slot 108)
    assert [(g.start, g.end) for g in m.gaps] == [
        (start + timedelta(minutes=355), start + timedelta(hours=9))]
    assert any("shorter than the 14 days" in c for c in m.caveats)


def test_range_limits_follow_the_consensus_in_both_units() -> None:
    # 70 mg/dL (3.8855 mmol/L) and 3.9 / 10.0 mmol/L are in range; 3.0 mmol/L is not "< 3.0".
    start = datetime(2024, 3, 1, tzinfo=UTC)
    rows = [(start + timedelta(minutes=5 * i), v)
            for i, v in enumerate([70 / 18.0156, 3.9, 10.0, 3.0, 10.1, 13.9, 14.0])]
    m = glucose_metrics(frame(rows), start, start + timedelta(hours=1), ZoneInfo("UTC"))
    assert m.in_range == pytest.approx(100 * 3 / 7)  # 70 mg/dL, 3.9, 10.0
    assert (m.below_3_9, m.below_3_0) == (pytest.approx(100 / 7), 0.0)  # 3.0 only
    assert m.above_10_0 == pytest.approx(100 * 3 / 7)  # 10.1, 13.9, 14.0
    assert m.above_13_9 == pytest.approx(100 / 7)  # 14.0 only


def test_meter_only_metrics_say_what_cannot_be_computed() -> None:
    df = frame([(r.time, r.fields["glucose"].value) for r in meter_readings("bo")], "meter-1")
    start = datetime.combine(FIRST, datetime.min.time(), ZONE)
    m = glucose_metrics(df, start, start + timedelta(days=4), ZONE)

    assert (m.readings, m.cgm, m.gmi_percent, m.coverage_percent) == (12, False, None, None)
    assert m.mean_mmol == pytest.approx(6.875)  # (5 + 8 + 11 + 3.5) / 4, the same each day
    # deviations -1.875, 1.125, 4.125, -3.375: squares sum 33.1875 a day, x 3 days = 99.5625;
    # SD = sqrt(99.5625 / 11) = 3.008514; CV = 3.008514 / 6.875 = 43.760 %
    assert m.cv_percent == pytest.approx(43.760, abs=1e-3)
    assert not m.cv_reliable
    assert (m.below_3_9, m.in_range, m.above_10_0) == (25.0, 50.0, 25.0)  # 3, 6, 3 of 12
    day3 = datetime.combine(FIRST + timedelta(days=2), datetime.min.time(), ZONE)
    assert [(g.start, g.end) for g in m.gaps] == [(day3, day3 + timedelta(days=1))]
    text = " ".join(m.caveats)
    assert "CV from 12 readings" in text and "unreliable" in text
    assert "Coverage is not computed" in text and "GMI is not computed" in text
    assert "not CGM data" in agp(df, ZONE).reason


def test_bp_summary_by_session_with_and_without_flagged() -> None:
    rows = bp_readings("ana")
    df = pd.DataFrame({
        "time": pd.to_datetime([r.time for r in rows], utc=True), "device": "bp-1",
        "systolic": [r.value("systolic") for r in rows],
        "diastolic": [r.value("diastolic") for r in rows],
        "flags": [",".join(r.flags) for r in rows]})
    s = bp_summary(pd.concat([df, df.iloc[:1]]), ZONE)  # plus one duplicate

    assert (s.flagged, s.duplicates) == (1, 1)
    # ESH: day 1 (150/90, 140/80, 130/80) is discarded and 14:00 is outside both windows;
    # counted: 170/100 at 07:30 (flagged) and 120/75 at 21:00 on day 2.
    assert (s.first_day_dropped, s.outside_windows) == (3, 1)
    every, morning, evening = s.all_readings
    assert (every.readings, every.systolic, every.diastolic) == (2, 145.0, 87.5)
    assert every.high_percent == 50.0  # 170/100 of 2
    assert (morning.systolic, evening.systolic) == (170.0, 120.0)
    assert s.difference_all == pytest.approx(50.0)
    clean_every, clean_morning, clean_evening = s.unflagged
    assert (clean_every.readings, clean_every.systolic) == (1, 120.0)
    assert clean_morning.readings == 0 and clean_evening.systolic == 120.0
    assert s.difference_unflagged is None
    assert "1 readings on 1 days" in s.caveats[0]


# --- end to end -------------------------------------------------------------------------------


@pytest.fixture
def sqlite_cfg(tmp_path: Path) -> Iterator[Config]:
    store = SqliteStore(tmp_path / "store.sqlite")
    store.write(cgm_readings("ana") + bp_readings("ana"))
    store.write(meter_readings("bo"))
    store.close()
    record_alert(tmp_path / "ledger.sqlite")
    yield config(tmp_path, {"kind": "sqlite", "path": str(tmp_path / "store.sqlite")})


def _text(page: Path) -> str:
    return re.sub(r"\s+", " ", page.read_text(encoding="utf-8"))


def assert_cgm_page(page: Path) -> None:
    text = _text(page)
    assert "Ana Novak (ana), 2026-03-02 to 2026-03-15" in text
    # each day: 12 x 3.5 + 120 x 6 + 120 x 8 + 36 x 12 = 2154 over 288 -> 7.479 mmol/L;
    # 7.479167 x 18.0156 = 134.742 mg/dL; GMI = 3.31 + 0.02392 x 134.742 = 6.533 %
    assert "<td>Mean glucose</td><td>7.5 mmol/L (135 mg/dL)</td>" in text
    assert "<td>GMI</td><td>6.5 %</td>" in text
    assert "<td>In range 3.9-10.0 mmol/L</td><td>83.3 %</td>" in text  # 240 / 288
    # below 3.9: 12 / 288, over the standard target of < 4 %: highlighted
    assert '<tr class="miss"><td>Below 3.9 mmol/L (includes below 3.0)</td><td>4.2 % \u2717' in text
    assert "<td>12.5 %</td>" in text  # above 10.0: 36 / 288
    assert "100.0 %</td><td>target &gt;= 70 % of 14 days" in text  # 4032 of 4032 expected
    assert "No gaps in the glucose readings." in text
    assert 'src="ana-2026-03-02-2026-03-15-agp.png"' in text
    # the flagged BP reading: its own row class and mark, and both summaries
    assert ('<tr class="flagged"><td>2026-03-03 07:30</td><td>morning</td><td>yes</td>'
            "<td>170</td>") in text
    assert "<td>2026-03-02 07:00</td><td>morning</td><td>no: first day</td>" in text
    assert "\u2691 flagged: body_movement" in text
    assert "1 of 6 readings were flagged" in text
    # ESH: day 1 (3 readings) and 14:00 are not counted; 170/100 (flagged) and 120/75 are
    assert ("<td>excluding flagged</td><td>morning and evening</td><td>1</td><td>120.0 mmHg</td>"
            in text)
    assert "Too few readings for a home BP by the ESH protocol" in text
    assert "morning surge</th>" not in text and "<td>Morning minus evening" not in text
    assert "<th>morning minus evening mean systolic</th>" in text
    assert "No heart_rate measurements in the store for this period" in text
    assert ("<td>night-low-glucose</td><td>high</td><td>2026-03-03 03:10</td>"
            "<td>acknowledged</td>") in text
    assert "Dr. Marko Kranjc (family_doctor)" in text
    assert "03:17 by Dr. Marko Kranjc" in text  # who acknowledged, in the patient's local time


def assert_png(path: Path, size: tuple[int, int]) -> None:
    pixels = imread(path)
    assert pixels.shape[:2] == (size[1], size[0])
    assert pixels.std() > 0.01  # not a blank canvas


ANA = ("--patient", "ana", "--from", "2026-03-02", "--to", "2026-03-15")


def test_report_through_sqlite_store(
    sqlite_cfg: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    code, out, err = report(sqlite_cfg, tmp_path, capsys, *ANA)
    print(f"14-day CGM report: {time.perf_counter() - started:.2f} s")

    page = tmp_path / "out" / "ana-2026-03-02-2026-03-15.html"
    assert (code, out, err) == (0, f"{page}\n", "")
    assert_cgm_page(page)
    assert_png(page.with_name("ana-2026-03-02-2026-03-15-agp.png"), (1200, 500))
    assert_png(page.with_name("ana-2026-03-02-2026-03-15-bp.png"), (1200, 500))
    assert_png(page.with_name("ana-2026-03-02-2026-03-15-daily.png"), (1200, 2 * 170 + 40))
    assert not page.with_name("ana-2026-03-02-2026-03-15-vitals.png").exists()


def test_meter_only_report_has_no_agp_and_says_why(
    sqlite_cfg: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = report(sqlite_cfg, tmp_path, capsys, "--patient", "bo", "--from",
                          "2026-03-02", "--to", "2026-03-05")
    assert code == 0, err
    page = tmp_path / "out" / "bo-2026-03-02-2026-03-05.html"
    text = _text(page)

    assert "Bo O&#x27;Neil &lt;Sr&gt; &amp; Co (bo), 2026-03-02 to 2026-03-05" in text
    assert "<Sr>" not in text
    assert "No AGP: these are not CGM data" in text
    assert not list((tmp_path / "out").glob("bo-*-agp.png"))
    assert "<td>Mean glucose</td><td>6.9 mmol/L (124 mg/dL)</td>" in text  # 6.875 mmol/L
    assert "43.8 % (unreliable: too few readings)" in text
    assert "<td>GMI</td><td>not available</td>" in text
    assert "Coverage is not computed: a meter has no expected reading rate." in text
    assert "<td>2026-03-04 00:00</td><td>2026-03-05 00:00</td><td>24.0 h</td>" in text  # day 3
    assert "No blood pressure readings in the period." in text
    assert "No alerts for readings in the period." in text
    assert_png(page.with_name("bo-2026-03-02-2026-03-05-daily.png"), (1200, 170 + 40))


def test_report_through_influxd(
    influxd: Influxd, influx_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = InfluxV1Store(influxd.url, influx_db)
    store.write(cgm_readings("ana") + bp_readings("ana"))
    store.close()
    record_alert(tmp_path / "ledger.sqlite")
    cfg = config(tmp_path, {"kind": "influx_v1", "url": influxd.url, "database": influx_db})

    code, _, err = report(cfg, tmp_path, capsys, *ANA)
    assert code == 0, err
    assert_cgm_page(tmp_path / "out" / "ana-2026-03-02-2026-03-15.html")


def test_cli_all_shows_progress_and_writes_one_page_each(
    sqlite_cfg: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = report(sqlite_cfg, tmp_path, capsys, "--all", "--from", "2026-03-02",
                            "--to", "2026-03-15")

    assert code == 0, err
    assert err == "[1/2] ana ...\n[2/2] bo ...\n"
    assert sorted(p.name for p in (tmp_path / "out").glob("*.html")) == [
        "ana-2026-03-02-2026-03-15.html", "bo-2026-03-02-2026-03-15.html"]
    assert str(tmp_path / "out" / "bo-2026-03-02-2026-03-15.html") in out


@pytest.mark.parametrize(("args", "message"), [
    (["--patient", "zoe", "--from", "2026-03-02", "--to", "2026-03-03"],
     "error: unknown patient 'zoe' (configured: ana, bo)\n"),
    (["--patient", "ana", "--from", "2026-03-05", "--to", "2026-03-03"],
     "error: bad dates: --to 2026-03-03 is before --from 2026-03-05\n"),
    (["--patient", "ana", "--from", "2026-02-30", "--to", "2026-03-03"],
     "error: bad dates: --from '2026-02-30' is not a date such as 2026-11-20\n"),
])
def test_cli_names_what_is_wrong(sqlite_cfg: Config, tmp_path: Path, args: list[str],
                                 message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert report(sqlite_cfg, tmp_path, capsys, *args) == (1, "", message)


def test_unreachable_store_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from servers import free_port

    port = free_port()
    cfg = config(tmp_path, {"kind": "influx_v1", "url": f"http://127.0.0.1:{port}",
                            "timeout_seconds": 2})
    code, _, err = report(cfg, tmp_path, capsys, *ANA)
    assert code == 1
    assert err.startswith("error: store unreachable while reading glucose for ana: InfluxDB at"
                          f" http://127.0.0.1:{port}/query: no answer")

    missing = tmp_path / "nowhere.sqlite"
    cfg = config(tmp_path, {"kind": "sqlite", "path": str(missing)})
    assert report(cfg, tmp_path, capsys, *ANA) == (
        1, "", f"error: store unreachable: the SQLite store {missing} does not exist\n")
    assert not missing.exists()
