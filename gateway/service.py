"""From a raw characteristic value to a message in the durable queue.

decode (Bluetooth SIG profile, after the device's quirks) -> Reading or Event with a stable id ->
durable queue. A value that does not decode is never dropped: it is counted by reason and
queued for the dead-letter topic with its bytes and the parser's message. Glucose records from
a RACP download are committed together with the download's high-water mark in one SQLite
transaction (``commit_glucose``), so a crash can never separate the two.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from homevitals.gateway.errors import ProfileError
from homevitals.gateway.gatt import RawValue
from homevitals.gateway.profiles import Decoded, decode
from homevitals.infra.outbox import DurableQueue
from homevitals.vocab import wire
from homevitals.vocab.clock import Clock
from homevitals.vocab.config import DeviceConfig, GatewayConfig, HomeConfig
from homevitals.vocab.readings import Event, EventKind, Measurement, Reading
from homevitals.vocab.topics import Topics

__all__ = ["Gateway", "GatewaySnapshot", "stable_id"]

logger = logging.getLogger(__name__)

# A BTHome button repeats each advertisement several times; the same packet id within this many
# seconds is the same press (bthome.io/format: "packet id ... to filter duplicate data").
_BTHOME_REPEAT_SECONDS = 30.0
# A press time a button reports itself is believed within this window around its arrival.
_EVENT_TIME_PAST = timedelta(hours=24)
_EVENT_TIME_FUTURE = timedelta(minutes=5)


def stable_id(*parts: object) -> str:
    """A 32-hex-digit id derived from what identifies a measurement, so a re-sent record maps to
    the same id (and the same InfluxDB point) however often it is delivered."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class GatewaySnapshot:
    """The gateway's counters at one moment, copied under its lock (heartbeat and /metrics read
    them from other threads than the one delivering values)."""

    counts: dict[str, int]
    rejects: dict[str, int]
    refused: int
    last_seen: dict[str, datetime]
    battery: dict[str, float]


class Gateway:
    def __init__(
        self,
        home: HomeConfig,
        queue: DurableQueue,
        topics: Topics,
        clock: Clock,
        options: GatewayConfig | None = None,
    ) -> None:
        self.home = home
        self.queue = queue
        self.topics = topics
        self.clock = clock
        self.policy = options.queue_full if options else "drop_oldest"
        self.devices: dict[str, DeviceConfig] = {d.id: d for d in home.devices}
        self.counts: Counter[str] = Counter()
        self.rejects: Counter[str] = Counter()
        self.refused = 0  # readings refused at the bound (policy drop_new_readings)
        self.last_seen: dict[str, datetime] = {}
        self.battery: dict[str, float] = {}
        self._bthome_last: dict[str, tuple[int, datetime]] = {}
        self._lock = threading.Lock()
        # Called after a RACP download queued something (the publisher's wake-up): the
        # connection manager hands records to this service directly, not through ``deliver``.
        self.on_queued: Callable[[], None] = lambda: None

    def snapshot(self) -> GatewaySnapshot:
        with self._lock:
            return GatewaySnapshot(dict(self.counts), dict(self.rejects), self.refused,
                                   dict(self.last_seen), dict(self.battery))

    # -- what the connection manager calls ------------------------------------------------------

    def deliver(self, raw: RawValue) -> None:
        """Entry point for live values. Never raises for bad data."""
        with self._lock:
            device = self.devices.get(raw.device)
            if device is None:
                self._reject(raw, "unknown_device",
                             f"device {raw.device!r} is not configured for home {self.home.id}")
                return
            self.last_seen[raw.device] = raw.received_at
            try:
                decoded = decode(raw.characteristic, raw.data, device.quirks)
            except ProfileError as exc:
                self._reject(raw, "bad_value", str(exc))
                return
            self._dispatch(device, raw, decoded)

    def _dispatch(self, device: DeviceConfig, raw: RawValue, decoded: Decoded) -> None:
        battery = decoded.details.get("battery")
        if decoded.button is not None:
            self._event(device, raw, decoded)
        elif decoded.characteristic == "2AAA":
            self._session_start(device, decoded)
        elif decoded.records:
            for i, record in enumerate(decoded.records):
                self._cgm_record(device, raw, record, i)
        elif decoded.measurement is not None:
            self._put_reading(self._reading(device, raw, decoded))
        else:
            self.counts["ignored"] += 1
        if decoded.measurement is Measurement.BATTERY:
            self.battery[device.id] = decoded.fields["battery"].value
        elif isinstance(battery, Mapping):
            level = battery.get("value")
            if isinstance(level, int | float):
                self.battery[device.id] = float(level)  # BTHome battery object

    def commit_glucose(
        self,
        device: DeviceConfig,
        records: Sequence[tuple[RawValue, RawValue | None]],
        state: Mapping[str, str],
        clock_offset: timedelta | None = None,
    ) -> int:
        """RACP records and the new high-water mark, in one transaction (see racp.py)."""
        with self._lock:
            if self.policy == "drop_new_readings" and len(self.queue) >= self.queue.max_messages:
                # The records stay on the meter: the mark does not move, a later download
                # fetches them when there is room.
                logger.error("gateway queue full (%d): %d glucose records from %s left on the"
                             " meter", self.queue.max_messages, len(records), device.id)
                self.refused += len(records)
                return 0
            readings = [self._glucose(device, m, c, clock_offset) for m, c in records]
            with self.queue.transaction() as db:
                for r in readings:
                    self.queue.put_in(db, self.topics.reading(self.home.id, device.id),
                                      wire.encode(r))
                for key, value in state.items():
                    db.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)", (key, value))
            for m, _ in records:
                self.last_seen[device.id] = m.received_at
            self.counts["readings"] += len(readings)
        self.on_queued()
        return len(readings)

    def reject(self, raw: RawValue, error: str, state: Mapping[str, str] | None = None) -> None:
        """Dead-letter a RACP record, then write ``state`` (racp.py: the records rejected; a
        crash between the two dead-letters the record once more at worst)."""
        with self._lock:
            self._reject(raw, "bad_value", error)
            for key, value in (state or {}).items():
                self.queue.set_state(key, value)
        self.on_queued()

    def get_state(self, key: str) -> str | None:
        return self.queue.get_state(key)

    def local_now(self) -> datetime:
        return self.clock.now().astimezone(self.home.zone).replace(tzinfo=None)

    # -- readings -------------------------------------------------------------------------------

    def _device_time(self, decoded: Decoded) -> datetime | None:
        if decoded.device_time is None:
            return None
        return decoded.device_time.replace(tzinfo=self.home.zone).astimezone(UTC)

    def _glucose(self, device: DeviceConfig, raw: RawValue, context_raw: RawValue | None,
                 clock_offset: timedelta | None) -> Reading:
        decoded = decode(raw.characteristic, raw.data, device.quirks)  # decoded once already
        context = dict(decoded.context)
        if context_raw is not None:
            context.update(decode(context_raw.characteristic, context_raw.data).context)
        device_time = self._device_time(decoded)
        time = device_time
        if device_time is not None and clock_offset is not None:
            time = device_time + clock_offset
            context["clock_offset_s"] = f"{clock_offset.total_seconds():.0f}"
        return self._reading(device, raw, decoded, context=context, time=time)

    def _reading(self, device: DeviceConfig, raw: RawValue, decoded: Decoded, *,
                 context: Mapping[str, str] | None = None, time: datetime | None = None,
                 rid: str | None = None) -> Reading:
        assert decoded.measurement is not None
        device_time = self._device_time(decoded)
        if rid is not None:
            pass
        elif decoded.sequence is not None:
            # The sequence number moves on a reverse-numbering meter: its device time and value
            # (the bytes after flags and sequence number) identify the record instead.
            ident = (raw.data[0:1] + raw.data[3:]).hex() if "glucose_reverse_sequence" in \
                device.quirks else decoded.sequence
            rid = stable_id(self.home.id, device.id, decoded.characteristic, ident, device_time)
        else:
            rid = stable_id(self.home.id, device.id, decoded.characteristic, raw.data.hex(),
                            raw.received_at)
        return Reading(
            reading_id=rid, home=self.home.id, patient=device.patient, device=device.id,
            measurement=decoded.measurement, fields=decoded.fields,
            time=time or device_time or raw.received_at, received_at=raw.received_at,
            device_time=device_time, characteristic=decoded.characteristic,
            raw=raw.data.hex(), flags=decoded.flags,
            context=decoded.context if context is None else context,
        )

    def _session_start(self, device: DeviceConfig, decoded: Decoded) -> None:
        if decoded.device_time is None:
            return
        offset = decoded.details.get("utc_offset_min")
        zone = timezone(timedelta(minutes=offset)) if isinstance(offset, int) else self.home.zone
        start = decoded.device_time.replace(tzinfo=zone).astimezone(UTC)
        self.queue.set_state(f"cgm:{device.id}:session_start", start.isoformat())
        self.counts["cgm_sessions"] += 1

    def _cgm_record(self, device: DeviceConfig, raw: RawValue, record: Decoded, i: int) -> None:
        start = self.queue.get_state(f"cgm:{device.id}:session_start")
        assert record.time_offset is not None
        if start is None:
            # No session start known: the newest record was measured about now.
            rid = stable_id(self.home.id, device.id, "2AA7", raw.data.hex(), raw.received_at, i)
            time = None
        else:
            rid = stable_id(self.home.id, device.id, "2AA7", start, record.time_offset)
            time = datetime.fromisoformat(start) + timedelta(minutes=record.time_offset)
        self._put_reading(self._reading(device, raw, record, time=time, rid=rid))

    def _put_reading(self, reading: Reading) -> None:
        if self.policy == "drop_new_readings" and len(self.queue) >= self.queue.max_messages:
            self.refused += 1
            logger.error("gateway queue full (%d messages): refused a %s reading from %s;"
                         " %d refused since start", self.queue.max_messages, reading.measurement,
                         reading.device, self.refused)
            return
        self.queue.put(self.topics.reading(self.home.id, reading.device), wire.encode(reading),
                       message_id=reading.reading_id)
        self.counts["readings"] += 1
        logger.info("queued %s %s from %s", reading.measurement, _summary(reading),
                    reading.device)

    # -- call buttons ---------------------------------------------------------------------------

    def _event(self, device: DeviceConfig, raw: RawValue, decoded: Decoded) -> None:
        last = self._bthome_last.get(device.id)
        if decoded.packet_id is not None:
            if (last and last[0] == decoded.packet_id
                    and (raw.received_at - last[1]).total_seconds() < _BTHOME_REPEAT_SECONDS):
                self.counts["duplicate_adverts"] += 1
                return
            self._bthome_last[device.id] = (decoded.packet_id, raw.received_at)
        eid = stable_id(self.home.id, device.id, "event", decoded.packet_id, raw.data.hex(),
                        raw.received_at)
        event = Event(
            event_id=eid, home=self.home.id, patient=device.patient, device=device.id,
            kind=EventKind.CALL_BUTTON, time=self._press_time(decoded, raw),
            received_at=raw.received_at, raw=raw.data.hex(), detail=decoded.button or "",
        )
        # Never refused at the bound: a call for help outranks any reading.
        self.queue.put(self.topics.event(self.home.id, device.id), wire.encode(event),
                       message_id=eid)
        self.counts["events"] += 1
        logger.warning("queued call-button %s from %s", decoded.button, device.id)

    def _press_time(self, decoded: Decoded, raw: RawValue) -> datetime:
        """The real press time: the button's own time stamp when it sends one that makes sense,
        else the moment the radio received it (stamped before any queue, see docs/gateway.md)."""
        t = decoded.event_time
        if t is not None and raw.received_at - _EVENT_TIME_PAST <= t <= (
                raw.received_at + _EVENT_TIME_FUTURE):
            return t
        return raw.received_at

    def _reject(self, raw: RawValue, reason: str, error: str) -> None:
        self.rejects[reason] += 1
        logger.error("rejected value from %s (%s): %s [%s]", raw.device, raw.characteristic,
                     error, raw.data.hex())
        payload = wire.encode_reject(
            stage="gateway", reason=reason, error=error, topic="", payload=raw.data,
            time=raw.received_at,
            extra={"home": self.home.id, "device": raw.device,
                   "characteristic": raw.characteristic},
        )
        # Inside the home's own subtree, so a broker ACL confining the gateway allows it.
        self.queue.put(self.topics.gateway_deadletter(self.home.id, reason), payload)


def _summary(r: Reading) -> str:
    return ", ".join(f"{k} {v.value:g} {v.unit}" for k, v in r.fields.items())
