"""Glucose record download (RACP) against simulated meters: the gateway's own connection
manager and RACP procedure, the real durable queue on disk, simulated peripherals that drop the
link, repeat or truncate records, never answer, number records backwards or keep the wrong time.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from gateway_helpers import Rig, home

from homevitals.gateway.gatt import GattSession, Radio
from homevitals.simulators.ble_values import encode_glucose_measurement
from homevitals.simulators.devices import (
    GlucoseMeter,
    SimulatedRadio,
    SimulatedSession,
    StoredRecord,
    make_streaming,
)

ZONE = ZoneInfo("Europe/Ljubljana")
ADDRESS = "C0:11:22:33:44:01"
METER = {"id": "meter-1", "kind": "glucose_meter", "address": ADDRESS}


def _records(n: int, start: datetime = datetime(2026, 3, 1, 7, 0)) -> list[StoredRecord]:
    return [StoredRecord(start + timedelta(hours=6 * i), round(4.0 + i * 0.5, 1),
                         meal="postprandial" if i % 2 else None) for i in range(n)]


def _meter(n: int, **kw: object) -> GlucoseMeter:
    return GlucoseMeter(ADDRESS, _records(n), zone=ZONE, **kw)  # type: ignore[arg-type]


def _sequences(rig: Rig) -> list[int]:
    return sorted(int.from_bytes(bytes.fromhex(r.raw)[1:3], "little") for r in rig.glucose())


def test_simulators_fit_the_gateway_protocols() -> None:
    # Structural typing: mypy checks these assignments (scripts/typecheck.py runs over tests).
    radio: Radio = SimulatedRadio([])
    session: GattSession = SimulatedSession(_meter(0))
    assert isinstance(radio, Radio) and session.address == ADDRESS


def test_download_joins_context_and_fetches_nothing_twice_across_a_restart(
    tmp_path: Path,
) -> None:
    meter = _meter(5)
    rig = Rig(tmp_path / "q.sqlite", home(METER), SimulatedRadio([meter]))
    asyncio.run(rig.run_until(lambda: len(rig.glucose()) == 5))
    readings = sorted(rig.glucose(), key=lambda r: r.time)
    # kg/L meters send whole mg/dL: 4.0 mmol/L is 72 mg/dL is 3.997 mmol/L.
    assert [r.value("glucose") for r in readings] == pytest.approx([4.0, 4.5, 5.0, 5.5, 6.0],
                                                                   abs=0.01)
    assert [r.context.get("meal") for r in readings] == [None, "postprandial", None,
                                                        "postprandial", None]
    # 07:00 on the meter's clock is 06:00 UTC in Ljubljana in March (CET).
    assert readings[0].time == datetime(2026, 3, 1, 6, 0, tzinfo=ZoneInfo("UTC"))
    assert rig.queue.get_state("racp:meter-1:last_sequence") == "5"
    assert meter.requests[:2] == [bytes([0x04, 0x01]), bytes([0x01, 0x01])]  # all records
    rig.close()

    # Restart: a new process on the same queue file, the meter has two more records.
    meter.add(StoredRecord(datetime(2026, 3, 3, 7, 0), 7.7))
    meter.add(StoredRecord(datetime(2026, 3, 3, 13, 0), 8.8, meal="preprandial"))
    sent_before = meter.reported
    rig2 = Rig(tmp_path / "q.sqlite", home(METER), SimulatedRadio([meter]))
    asyncio.run(rig2.run_until(lambda: len(rig2.glucose()) == 7))
    assert bytes([0x01, 0x03, 0x01, 0x06, 0x00]) in meter.requests  # ">= sequence number 6"
    assert meter.reported - sent_before == 2
    assert _sequences(rig2) == [1, 2, 3, 4, 5, 6, 7]
    assert len({r.reading_id for r in rig2.glucose()}) == 7
    rig2.close()


def test_link_dropped_mid_transfer_resumes_without_gap_or_duplicate(tmp_path: Path) -> None:
    meter = _meter(12)
    meter.misbehave.drop_after = 5  # values (measurements and contexts) before hanging up
    rig = Rig(tmp_path / "q.sqlite", home(METER), SimulatedRadio([meter]))
    asyncio.run(rig.run_until(lambda: len(rig.glucose()) == 12))
    assert meter.connections >= 2
    assert _sequences(rig) == list(range(1, 13))
    assert len({r.reading_id for r in rig.glucose()}) == 12
    # The second transfer asked from after the last record committed whole (record 3: its
    # context was the 5th value; record 4's measurement was cut before its context came).
    resumed = [r for r in meter.requests if r[:2] == bytes([0x01, 0x03])]
    assert resumed[0] == bytes([0x01, 0x03, 0x01, 0x04, 0x00])
    rig.close()


def test_a_repeated_record_is_queued_once(tmp_path: Path) -> None:
    meter = GlucoseMeter(ADDRESS, [StoredRecord(datetime(2026, 3, 1, 7, 0) + timedelta(hours=i),
                                                5.0 + i / 10) for i in range(6)], zone=ZONE)
    meter.misbehave.repeat = 3
    rig = Rig(tmp_path / "q.sqlite", home(METER), SimulatedRadio([meter]))
    asyncio.run(rig.run_until(lambda: meter.connections >= 2 and len(rig.glucose()) >= 6))
    assert _sequences(rig) == [1, 2, 3, 4, 5, 6]
    rig.close()


def test_a_truncated_record_is_dead_lettered_and_the_rest_arrive(tmp_path: Path) -> None:
    meter = GlucoseMeter(ADDRESS, [StoredRecord(datetime(2026, 3, 1, 7, 0) + timedelta(hours=i),
                                                5.0) for i in range(4)], zone=ZONE)
    meter.misbehave.truncate = 1
    rig = Rig(tmp_path / "q.sqlite", home(METER), SimulatedRadio([meter]))
    asyncio.run(rig.run_until(lambda: len(rig.glucose()) == 3))
    assert _sequences(rig) == [2, 3, 4]
    rejects = rig.rejects()
    assert len(rejects) == 1
    assert rejects[0]["error"] == ("0x2A18: flags 0x02 announce a type-sample location but"
                                   " only 12 bytes")
    sent = encode_glucose_measurement(1, datetime(2026, 3, 1, 7, 0), 5.0)
    assert rejects[0]["payload_hex"] == sent[:-1].hex()  # what arrived, one byte short
    rig.close()


class _SilentMeter(GlucoseMeter):
    """Accepts "report stored records" and then never sends anything."""

    async def on_write(self, session: SimulatedSession, characteristic: str,
                       data: bytes) -> None:
        if data[:1] == b"\x01":
            self.requests.append(data)
            return
        await super().on_write(session, characteristic, data)


def test_a_meter_that_never_answers_is_sent_abort(tmp_path: Path) -> None:
    meter = _SilentMeter(ADDRESS, _records(3), zone=ZONE)
    rig = Rig(tmp_path / "q.sqlite", home(METER), SimulatedRadio([meter]), racp_timeout=0.2)
    asyncio.run(rig.run_until(lambda: rig.central.failures >= 1))
    assert bytes([0x03, 0x00]) in meter.requests  # Abort Operation
    assert rig.glucose() == [] and rig.queue.get_state("racp:meter-1:last_sequence") is None
    rig.close()


def test_quirk_reverse_numbering(tmp_path: Path) -> None:
    device = {**METER, "quirks": ["glucose_reverse_sequence"]}
    meter = _meter(4, reverse_numbering=True)
    rig = Rig(tmp_path / "q.sqlite", home(device), SimulatedRadio([meter]))
    asyncio.run(rig.run_until(lambda: len(rig.glucose()) == 4))
    first_ids = {r.reading_id for r in rig.glucose()}
    # Two new measurements: every stored record now has a different sequence number.
    meter.add(StoredRecord(datetime(2026, 3, 3, 7, 0), 9.1))
    meter.add(StoredRecord(datetime(2026, 3, 3, 9, 0), 9.2))
    asyncio.run(rig.run_until(lambda: len(rig.glucose()) >= 6 and meter.connections >= 3))
    readings = rig.glucose()
    assert len(readings) == 6 and first_ids < {r.reading_id for r in readings}
    assert sorted(r.value("glucose") for r in readings)[-2:] == pytest.approx([9.1, 9.2],
                                                                              abs=0.02)
    assert rig.queue.get_state("racp:meter-1:last_device_time") == "2026-03-03T09:00:00"
    rig.close()


def test_quirk_clock_from_date_time(tmp_path: Path) -> None:
    device = {**METER, "quirks": ["glucose_clock_from_date_time"]}
    meter = _meter(1, clock_skew=timedelta(hours=2))  # the meter's clock is 2 h behind
    rig = Rig(tmp_path / "q.sqlite", home(device), SimulatedRadio([meter]))
    asyncio.run(rig.run_until(lambda: len(rig.glucose()) == 1))
    (r,) = rig.glucose()
    assert r.device_time is not None
    offset = (r.time - r.device_time).total_seconds()
    assert abs(offset - 7200) <= 2
    assert abs(int(r.context["clock_offset_s"]) - 7200) <= 2
    rig.close()


def test_connects_are_made_one_at_a_time(tmp_path: Path) -> None:
    kinds = ["blood_pressure", "heart_rate", "pulse_oximeter", "thermometer", "scale", "cgm"]
    devices = [{"id": f"dev-{i}", "kind": k, "address": f"C0:00:00:00:00:0{i}"}
               for i, k in enumerate(kinds)]
    peripherals = [make_streaming(k, f"C0:00:00:00:00:0{i}", interval=0.05, zone=ZONE)
                   for i, k in enumerate(kinds)]
    radio = SimulatedRadio([_meter(3), *peripherals], connect_delay=0.05)
    rig = Rig(tmp_path / "q.sqlite", home(METER, *devices), radio)

    def every_kind() -> bool:
        return {r.measurement.value for r in rig.readings()} >= {
            "glucose", "blood_pressure", "heart_rate", "spo2", "temperature", "weight"}

    asyncio.run(rig.run_until(every_kind))
    assert radio.parallel_connects == 0
    assert all(p.connections >= 1 for p in peripherals)
    assert set(rig.gateway.battery) >= {"dev-0", "meter-1"}  # Battery Level read at connect
    rig.close()
