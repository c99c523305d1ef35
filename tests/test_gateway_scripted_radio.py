"""The scripted household's radio (demo, replay): the gateway's own connection manager connects
to its devices, downloads the glucose meter over RACP, reads the CGM's session start and takes
the cuff's indications and the button's advertisements - in simulated time, no wall-clock waits."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway_helpers import home

from homevitals.gateway.central import Central
from homevitals.gateway.gatt import Radio
from homevitals.gateway.service import Gateway
from homevitals.infra.outbox import DurableQueue
from homevitals.roots.scripted_gateway import settled
from homevitals.simulators.ble_values import (
    SFLOAT_NAN,
    encode_bp_measurement,
    encode_bthome_button,
    encode_glucose_measurement,
)
from homevitals.simulators.ble_values_ext import (
    CgmRecord,
    encode_cgm_measurement,
    encode_cgm_session_start,
)
from homevitals.simulators.devices import GlucoseMeter
from homevitals.simulators.devices.scripted import ScheduledValue, ScriptedRadio
from homevitals.vocab import wire
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.readings import Event, Reading
from homevitals.vocab.topics import Topics

ZONE = ZoneInfo("Europe/Ljubljana")
START = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
DEVICES = [
    {"id": "meter-1", "kind": "glucose_meter", "address": "C0:00:00:00:00:01"},
    {"id": "cgm-1", "kind": "cgm", "address": "C0:00:00:00:00:02"},
    {"id": "bp-1", "kind": "blood_pressure", "address": "C0:00:00:00:00:03"},
    {"id": "button-1", "kind": "call_button", "address": "C0:00:00:00:00:04"},
]


def _local(t: datetime) -> datetime:
    return t.astimezone(ZONE).replace(tzinfo=None)


def _glucose(seq: int, at: datetime, mmol: float) -> ScheduledValue:
    data = encode_glucose_measurement(seq, _local(at), mmol, unit="mol/L")
    return ScheduledValue(at + timedelta(minutes=1), "meter-1", "2A18", data)


def _cgm(session: datetime, at: datetime, mmol: float) -> list[ScheduledValue]:
    minutes = round((at - session) / timedelta(minutes=1))
    start = encode_cgm_session_start(session.replace(tzinfo=None), tz_quarters=0)
    return [ScheduledValue(at, "cgm-1", "2AAA", start)] * (at == session) + [
        ScheduledValue(at, "cgm-1", "2AA7", encode_cgm_measurement([CgmRecord(mmol, minutes)]))]


def _script() -> list[ScheduledValue]:
    t = START
    bp = encode_bp_measurement(131, 84, 100, timestamp=_local(t + timedelta(hours=1)), pulse=66)
    return [
        _glucose(1, t, 6.1),
        *_cgm(t + timedelta(minutes=10), t + timedelta(minutes=10), 5.5),
        *_cgm(t + timedelta(minutes=10), t + timedelta(minutes=15), 5.2),
        _glucose(2, t + timedelta(minutes=30), SFLOAT_NAN),  # a record that never decodes
        ScheduledValue(t + timedelta(hours=1, seconds=40), "bp-1", "2A35", bp),
        _glucose(3, t + timedelta(hours=2), 4.8),
        *[ScheduledValue(t + timedelta(hours=3, milliseconds=ms), "button-1", "bthome",
                         encode_bthome_button(7, "press")) for ms in (0, 300, 600)],
        # A new sensor: the gateway reconnects and reads the new session start.
        *_cgm(t + timedelta(hours=4), t + timedelta(hours=4), 6.6),
        _glucose(4, t + timedelta(hours=5), 7.0),
    ]


def test_a_scripted_household_runs_the_gateway_connection_manager(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    home_cfg = home(*DEVICES)
    radio = ScriptedRadio(home_cfg, clock)
    _: Radio = radio  # the gateway's protocol, checked by mypy
    queue = DurableQueue(tmp_path / "q.sqlite")
    gateway = Gateway(home_cfg, queue, Topics(), clock)
    central = Central(radio, gateway, clock)

    async def story() -> int:
        task = asyncio.create_task(central.run(home_cfg.devices, gateway.deliver))
        stalls = 0
        try:
            stalls += not await settled(central, radio)
            for value in _script():
                clock.set(max(clock.now(), value.at))
                radio.send(value)
                stalls += not await settled(central, radio)
            return stalls
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    assert asyncio.run(story()) == 0  # every step settled
    readings = [m for m in (_decode(queue)) if isinstance(m, Reading)]
    glucose = [(r.device, r.time, r.received_at, r.fields["glucose"].value)
               for r in readings if r.device == "meter-1"]
    # Each record downloaded over RACP when the meter had it, stamped with its own time.
    assert glucose == [
        ("meter-1", START, START + timedelta(minutes=1), 6.1),
        ("meter-1", START + timedelta(hours=2), START + timedelta(hours=2, minutes=1), 4.8),
        ("meter-1", START + timedelta(hours=5), START + timedelta(hours=5, minutes=1), 7.0),
    ]
    meter = radio.devices["meter-1"]
    assert isinstance(meter, GlucoseMeter)
    # RACP: number of records, then report them: all at first, then ">= last + 1".
    assert meter.requests[:2] == [bytes([0x04, 0x01]), bytes([0x01, 0x01])]
    assert meter.requests[-2:] == [bytes.fromhex("0403010400"), bytes.fromhex("0103010400")]
    # The NaN record is dead-lettered once, though the meter sent it in two downloads.
    assert meter.requests.count(bytes.fromhex("0103010200")) == 2
    assert dict(gateway.rejects) == {"bad_value": 1}
    # CGM records timed from the session start read at connect; the new sensor was read too.
    cgm = [(r.time, r.fields["glucose"].value) for r in readings if r.device == "cgm-1"]
    assert [t for t, _ in cgm] == [START + timedelta(minutes=m) for m in (10, 15, 240)]
    assert gateway.counts["cgm_sessions"] == 2
    bp = [r for r in readings if r.device == "bp-1"]
    assert [(r.fields["systolic"].value, r.received_at) for r in bp] == [
        (131.0, START + timedelta(hours=1, seconds=40))]
    # Three advertisements of one press: one event, at the moment it was heard.
    events = [m for m in _decode(queue) if isinstance(m, Event)]
    assert [e.time for e in events] == [START + timedelta(hours=3)]
    assert central.failures == 0
    queue.close()


def _decode(queue: DurableQueue) -> list[object]:
    return [wire.decode(m.payload) for m in queue.peek(10_000)]
