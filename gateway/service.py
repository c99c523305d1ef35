"""From a raw characteristic value to a message in the durable queue.

decode (Bluetooth SIG profile) -> Reading or Event with a stable id -> durable queue. A value that
does not decode is never dropped: it is counted by reason and queued for the dead-letter topic
with its bytes and the parser's message.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from datetime import UTC, datetime

from homevitals import wire
from homevitals.clock import Clock
from homevitals.config import DeviceConfig, HomeConfig
from homevitals.gateway.errors import ProfileError
from homevitals.gateway.profiles import Decoded, decode
from homevitals.gateway.transport import RawValue
from homevitals.outbox import DurableQueue
from homevitals.readings import Event, EventKind, Reading
from homevitals.topics import Topics

__all__ = ["Gateway", "stable_id"]

logger = logging.getLogger(__name__)

# A BTHome button repeats each advertisement several times; the same packet id within this many
# seconds is the same press (bthome.io/format: "packet id ... to filter duplicate data").
_BTHOME_REPEAT_SECONDS = 30.0


def stable_id(*parts: object) -> str:
    """A 32-hex-digit id derived from what identifies a measurement, so a re-sent record maps to
    the same id (and the same InfluxDB point) however often it is delivered."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]


class Gateway:
    def __init__(self, home: HomeConfig, queue: DurableQueue, topics: Topics, clock: Clock) -> None:
        self.home = home
        self.queue = queue
        self.topics = topics
        self.clock = clock
        self.devices: dict[str, DeviceConfig] = {d.id: d for d in home.devices}
        self.counts: Counter[str] = Counter()
        self.rejects: Counter[str] = Counter()
        self.last_seen: dict[str, datetime] = {}
        self.battery: dict[str, float] = {}
        self._bthome_last: dict[str, tuple[int, datetime]] = {}
        self._lock = threading.Lock()

    def deliver(self, raw: RawValue) -> None:
        """Entry point for transports. Never raises for bad data."""
        with self._lock:
            device = self.devices.get(raw.device)
            if device is None:
                self._reject(
                    raw,
                    "unknown_device",
                    f"device {raw.device!r} is not configured for home {self.home.id}",
                )
                return
            self.last_seen[raw.device] = raw.received_at
            try:
                decoded = decode(raw.characteristic, raw.data)
            except ProfileError as exc:
                self._reject(raw, "bad_value", str(exc))
                return
            if decoded.button is not None:
                self._event(device, raw, decoded)
            elif decoded.measurement is not None:
                self._reading(device, raw, decoded)
            else:
                self.counts["ignored"] += 1

    def _device_time(self, decoded: Decoded) -> datetime | None:
        if decoded.device_time is None:
            return None
        return decoded.device_time.replace(tzinfo=self.home.zone).astimezone(UTC)

    def _reading(self, device: DeviceConfig, raw: RawValue, decoded: Decoded) -> None:
        assert decoded.measurement is not None
        device_time = self._device_time(decoded)
        if decoded.sequence is not None:
            rid = stable_id(
                self.home.id, device.id, decoded.characteristic, decoded.sequence, device_time
            )
        else:
            rid = stable_id(
                self.home.id, device.id, decoded.characteristic, raw.data.hex(), raw.received_at
            )
        reading = Reading(
            reading_id=rid,
            home=self.home.id,
            patient=device.patient,
            device=device.id,
            measurement=decoded.measurement,
            fields=decoded.fields,
            time=device_time or raw.received_at,
            received_at=raw.received_at,
            device_time=device_time,
            characteristic=decoded.characteristic,
            raw=raw.data.hex(),
            flags=decoded.flags,
            context=decoded.context,
        )
        self.queue.put(
            self.topics.reading(self.home.id, device.id), wire.encode(reading), message_id=rid
        )
        self.counts["readings"] += 1
        logger.info("queued %s %s from %s", decoded.measurement, _summary(reading), device.id)

    def _event(self, device: DeviceConfig, raw: RawValue, decoded: Decoded) -> None:
        last = self._bthome_last.get(device.id)
        if decoded.packet_id is not None:
            if (
                last
                and last[0] == decoded.packet_id
                and (raw.received_at - last[1]).total_seconds() < _BTHOME_REPEAT_SECONDS
            ):
                self.counts["duplicate_adverts"] += 1
                return
            self._bthome_last[device.id] = (decoded.packet_id, raw.received_at)
        eid = stable_id(
            self.home.id, device.id, "event", decoded.packet_id, raw.data.hex(), raw.received_at
        )
        event = Event(
            event_id=eid,
            home=self.home.id,
            patient=device.patient,
            device=device.id,
            kind=EventKind.CALL_BUTTON,
            time=raw.received_at,
            received_at=raw.received_at,
            raw=raw.data.hex(),
            detail=decoded.button or "",
        )
        self.queue.put(
            self.topics.event(self.home.id, device.id), wire.encode(event), message_id=eid
        )
        self.counts["events"] += 1
        logger.warning("queued call-button %s from %s", decoded.button, device.id)

    def _reject(self, raw: RawValue, reason: str, error: str) -> None:
        self.rejects[reason] += 1
        logger.error(
            "rejected value from %s (%s): %s [%s]",
            raw.device,
            raw.characteristic,
            error,
            raw.data.hex(),
        )
        payload = wire.encode_reject(
            stage="gateway",
            reason=reason,
            error=error,
            topic="",
            payload=raw.data,
            time=raw.received_at,
            extra={
                "home": self.home.id,
                "device": raw.device,
                "characteristic": raw.characteristic,
            },
        )
        self.queue.put(self.topics.deadletter("gateway", reason), payload)


def _summary(r: Reading) -> str:
    return ", ".join(f"{k} {v.value:g} {v.unit}" for k, v in r.fields.items())
