"""The glucose download's mark (last sequence number) beyond the ordinary: uint16 sequence
numbers that wrap after 65535, a meter that restarts its numbering, records and contexts
delivered twice (seen with bleak on BlueZ after a reconnect), a setup step that never returns
(seen in the BLE VM harness), and marks carried over from the deprecated
``gateway.sequence_state_path`` file. Simulated meters, the real connection manager, RACP code
and durable queue on disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway_helpers import Rig, home

from homevitals.gateway.app import import_sequence_marks
from homevitals.gateway.gatt import Advert, GattSession, OnValue
from homevitals.infra.outbox import DurableQueue
from homevitals.simulators.devices import (
    GlucoseMeter,
    SimulatedRadio,
    StoredRecord,
    make_streaming,
)
from homevitals.vocab.config import DeviceConfig

ZONE = ZoneInfo("Europe/Ljubljana")
ADDRESS = "C0:11:22:33:44:01"
METER = {"id": "meter-1", "kind": "glucose_meter", "address": ADDRESS}
DAY = datetime(2026, 3, 1, 7, 0)


class WrappingMeter(GlucoseMeter):
    """A meter whose uint16 sequence numbers wrap from 65535 to 0 (GLS: the field is uint16),
    and that answers "report stored records: last record" (RACP operator 0x06) with the record
    it numbered last."""

    def sequence_of(self, index: int) -> int:
        return super().sequence_of(index) & 0xFFFF

    def _select(self, operand: bytes) -> list[int] | int:
        if operand[:1] == b"\x06":
            return [len(self.records) - 1] if self.records else []
        return super()._select(operand)


def _records(n: int, start: datetime = DAY, meal_every: int = 0) -> list[StoredRecord]:
    return [StoredRecord(start + timedelta(hours=6 * i), round(4.0 + (i % 10) * 0.5, 1),
                         meal="preprandial" if meal_every and i % meal_every == 0 else None)
            for i in range(n)]


def _sequences(rig: Rig) -> list[int]:
    return sorted(int.from_bytes(bytes.fromhex(r.raw)[1:3], "little") for r in rig.glucose())


def _run(rig: Rig, done: Callable[[], bool]) -> None:
    asyncio.run(rig.run_until(done))


def test_sequence_numbers_wrapping_after_65535_lose_nothing(tmp_path: Path) -> None:
    meter = WrappingMeter(ADDRESS, _records(6), zone=ZONE, first_sequence=65530)
    rig = Rig(tmp_path / "q.sqlite", home(METER), SimulatedRadio([meter]))
    _run(rig, lambda: len(rig.glucose()) == 6)
    assert rig.queue.get_state("racp:meter-1:last_sequence") == "65535"

    # Three new measurements: the meter numbers them 0, 1, 2.
    for record in _records(3, start=DAY + timedelta(days=3)):
        meter.add(record)
    assert [meter.sequence_of(i) for i in range(6, 9)] == [0, 1, 2]
    _run(rig, lambda: len(rig.glucose()) >= 9)
    assert _sequences(rig) == [0, 1, 2, 65530, 65531, 65532, 65533, 65534, 65535]
    assert bytes([0x01, 0x01]) in meter.requests  # after 65535: all records, chosen by time
    assert rig.queue.get_state("racp:meter-1:last_sequence") == "2"

    # Back to ">= last + 1" in the new numbering.
    meter.add(StoredRecord(DAY + timedelta(days=5), 6.6))
    _run(rig, lambda: len(rig.glucose()) >= 10)
    assert meter.requests[-1] == bytes([0x01, 0x03, 0x01, 0x03, 0x00])
    assert _sequences(rig)[:4] == [0, 1, 2, 3]
    assert len({r.reading_id for r in rig.glucose()}) == 10
    assert rig.rejects() == []
    rig.close()


def test_a_meter_that_restarts_its_numbering_is_noticed(tmp_path: Path) -> None:
    meter = WrappingMeter(ADDRESS, _records(5), zone=ZONE)
    rig = Rig(tmp_path / "q.sqlite", home(METER), SimulatedRadio([meter]))
    _run(rig, lambda: len(rig.glucose()) == 5)
    assert rig.queue.get_state("racp:meter-1:last_sequence") == "5"

    # Reset (memory cleared, numbering from 1 again); two measurements taken since.
    meter.records = _records(2, start=DAY + timedelta(days=4))
    _run(rig, lambda: len(rig.glucose()) >= 7)
    assert bytes([0x01, 0x06]) in meter.requests  # "last record": dated after the mark
    newest = sorted(rig.glucose(), key=lambda r: r.time)[-2:]
    assert [r.device_time for r in newest] == [DAY.replace(tzinfo=ZONE) + timedelta(days=4, hours=h)
                                               for h in (0, 6)]
    assert rig.queue.get_state("racp:meter-1:last_sequence") == "2"
    assert len({r.reading_id for r in rig.glucose()}) == 7
    rig.close()


def test_nothing_new_on_a_meter_without_the_last_record_operator(tmp_path: Path) -> None:
    meter = GlucoseMeter(ADDRESS, _records(3), zone=ZONE)  # answers 0x06 "not supported"
    rig = Rig(tmp_path / "q.sqlite", home(METER), SimulatedRadio([meter]))
    # The second visit finds nothing at or above 4, asks for the last record, is told the
    # operator is not supported, and takes "nothing new" at its word: no error, no retry.
    _run(rig, lambda: bytes([0x01, 0x06]) in meter.requests)
    _run(rig, lambda: meter.connections >= 3)
    assert rig.central.failures == 0 and _sequences(rig) == [1, 2, 3]
    rig.close()


def test_repeated_records_and_contexts_are_one_reading_each(tmp_path: Path) -> None:
    meter = GlucoseMeter(ADDRESS, _records(6, meal_every=1), zone=ZONE)
    meter.misbehave.repeat = 12  # every measurement and every context arrives twice
    rig = Rig(tmp_path / "q.sqlite", home(METER), SimulatedRadio([meter]))
    _run(rig, lambda: len(rig.glucose()) == 6 and meter.connections >= 2)
    assert _sequences(rig) == [1, 2, 3, 4, 5, 6]
    assert [r.context.get("meal") for r in rig.glucose()] == ["preprandial"] * 6
    assert rig.rejects() == []
    rig.close()


class _HangingSession:
    """As BlueZ 5.66 + bleak 3.1 did when pairing failed: the link drops, and the subscribe
    call never returns."""

    def __init__(self, inner: GattSession) -> None:
        self.inner = inner
        self.address = inner.address

    def has(self, characteristic: str) -> bool:
        return self.inner.has(characteristic)

    async def start_notify(self, characteristic: str, callback: OnValue) -> None:
        if characteristic == "2A35":
            self.inner.hang_up()  # type: ignore[attr-defined]
            await asyncio.Event().wait()
        await self.inner.start_notify(characteristic, callback)

    async def write(self, characteristic: str, data: bytes, *, response: bool = True) -> None:
        await self.inner.write(characteristic, data, response=response)

    async def read(self, characteristic: str) -> bytes:
        return await self.inner.read(characteristic)

    async def wait_disconnected(self) -> None:
        await self.inner.wait_disconnected()


class _HangingRadio:
    def __init__(self, inner: SimulatedRadio, address: str) -> None:
        self.inner, self.address = inner, address

    @asynccontextmanager
    async def connect(self, device: DeviceConfig, timeout: float) -> AsyncIterator[GattSession]:
        async with self.inner.connect(device, timeout) as session:
            yield _HangingSession(session) if session.address == self.address else session

    async def scan(self, on_advert: Callable[[Advert], None]) -> None:
        await self.inner.scan(on_advert)


def test_a_setup_step_that_never_returns_does_not_starve_other_devices(tmp_path: Path) -> None:
    bp_address = "C0:00:00:00:00:01"
    bp = {"id": "bp-1", "kind": "blood_pressure", "address": bp_address}
    cuff = make_streaming("blood_pressure", bp_address, interval=0.05, zone=ZONE)
    inner = SimulatedRadio([cuff, GlucoseMeter(ADDRESS, _records(3), zone=ZONE)])
    # The cuff is configured first, so it takes the connect lock first.
    rig = Rig(tmp_path / "q.sqlite", home(bp, METER), _HangingRadio(inner, bp_address))
    _run(rig, lambda: len(rig.glucose()) == 3 and rig.central.failures >= 2)
    assert _sequences(rig) == [1, 2, 3]
    rig.close()


def test_marks_from_the_deprecated_sequence_file_are_carried_over(tmp_path: Path) -> None:
    legacy = tmp_path / "gateway-sequences.sqlite"
    db = sqlite3.connect(legacy)
    db.execute("CREATE TABLE sequences (device TEXT PRIMARY KEY, last INTEGER NOT NULL)")
    db.executemany("INSERT INTO sequences VALUES (?, ?)", [("meter-1", 3), ("meter-2", 40)])
    db.commit()
    db.close()
    queue = DurableQueue(tmp_path / "q.sqlite")
    queue.set_state("racp:meter-2:last_sequence", "41")  # newer than the file: kept
    assert import_sequence_marks(str(legacy), queue) == 1
    assert queue.get_state("racp:meter-2:last_sequence") == "41"
    queue.close()

    meter = GlucoseMeter(ADDRESS, _records(5), zone=ZONE)
    rig = Rig(tmp_path / "q.sqlite", home(METER), SimulatedRadio([meter]))
    _run(rig, lambda: len(rig.glucose()) == 2)
    assert _sequences(rig) == [4, 5]
    assert bytes([0x01, 0x03, 0x01, 0x04, 0x00]) in meter.requests
    rig.close()
