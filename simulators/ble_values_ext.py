"""Byte-exact values of the other health devices: CGM, heart rate, pulse oximeter, thermometer,
scale, battery level, iTag button.

Layouts: CGMS 1.0.1, HRS 1.0, PLXS 1.0, HTS 1.0, WSS 1.0, BAS 1.0 and the GATT Specification
Supplement. As in ``ble_values`` the layouts are written out again here rather than imported from
the gateway, so a round trip through the gateway's parsers checks two independent readings of
the specifications.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from homevitals.simulators.ble_values import (
    Number,
    SfloatSpecial,
    encode_date_time,
    encode_sfloat,
)
from homevitals.vocab.units import MGDL_PER_MMOLL

__all__ = [
    "CgmRecord",
    "crc16_mcrf4xx",
    "encode_battery_level",
    "encode_cgm_measurement",
    "encode_cgm_session_start",
    "encode_float",
    "encode_heart_rate",
    "encode_itag_press",
    "encode_plx_continuous",
    "encode_plx_spot_check",
    "encode_temperature",
    "encode_weight",
]


def crc16_mcrf4xx(data: bytes) -> int:
    """CGMS E2E-CRC: poly 0x1021 reflected (0x8408), seed 0xFFFF, no final XOR."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def encode_float(value: float, exponent: int) -> bytes:
    """IEEE 11073 32-bit FLOAT: 8-bit exponent above a 24-bit mantissa, little-endian."""
    scale: float = 10.0 ** -exponent
    mantissa = round(value * scale)
    if not -(1 << 23) + 3 <= mantissa <= (1 << 23) - 3:
        raise ValueError(f"{value} does not fit a FLOAT with exponent {exponent}")
    return (((exponent & 0xFF) << 24) | (mantissa & 0xFFFFFF)).to_bytes(4, "little")


@dataclass(frozen=True, slots=True)
class CgmRecord:
    """One CGM Measurement record: glucose in mmol/L, sent as whole mg/dL (as CGMs do)."""

    mmol_l: Number
    time_offset: int
    trend_mg_dl_min: float | None = None
    quality: float | None = None
    status: int = 0  # Status-Octet bits
    cal_temp: int = 0  # Cal/Temp-Octet bits
    warning: int = 0  # Warning-Octet bits
    crc: bool = False

    def encode(self) -> bytes:
        flags = (0x01 if self.trend_mg_dl_min is not None else 0) | (
            0x02 if self.quality is not None else 0)
        conc = (self.mmol_l.to_bytes() if isinstance(self.mmol_l, SfloatSpecial)
                else encode_sfloat(round(self.mmol_l * MGDL_PER_MMOLL), 0))
        body = conc + self.time_offset.to_bytes(2, "little")
        for bit, octet in ((0x80, self.status), (0x40, self.cal_temp), (0x20, self.warning)):
            if octet:
                flags |= bit
                body += bytes([octet])
        if self.trend_mg_dl_min is not None:
            body += encode_sfloat(self.trend_mg_dl_min, -1)
        if self.quality is not None:
            body += encode_sfloat(self.quality, -1)
        size = 2 + len(body) + (2 if self.crc else 0)
        record = bytes([size, flags]) + body
        return record + (crc16_mcrf4xx(record).to_bytes(2, "little") if self.crc else b"")


def encode_cgm_measurement(records: Iterable[CgmRecord]) -> bytes:
    """One notification holding the records back to back (CGMS 3.1)."""
    return b"".join(r.encode() for r in records)


def encode_cgm_session_start(start: datetime, *, tz_quarters: int = 4, dst_code: int = 0,
                             crc: bool = False) -> bytes:
    value = encode_date_time(start) + tz_quarters.to_bytes(1, "little", signed=True) + bytes(
        [dst_code])
    return value + (crc16_mcrf4xx(value).to_bytes(2, "little") if crc else b"")


def encode_heart_rate(bpm: int, *, uint16: bool = False, contact: bool | None = None,
                      energy_kj: int | None = None, rr_ms: Sequence[float] = ()) -> bytes:
    flags = (0x01 if uint16 or bpm > 255 else 0) | (0x04 if contact is not None else 0) | (
        0x02 if contact else 0)
    body = bpm.to_bytes(2 if flags & 0x01 else 1, "little")
    if energy_kj is not None:
        flags |= 0x08
        body += energy_kj.to_bytes(2, "little")
    if rr_ms:
        flags |= 0x10
        body += b"".join(round(ms * 1024 / 1000).to_bytes(2, "little") for ms in rr_ms)
    return bytes([flags]) + body


def _plx_tail(measurement_status: int | None, device_status: int | None,
              pai: Number | None, bits: tuple[int, int, int]) -> tuple[int, bytes]:
    flags, body = 0, b""
    if measurement_status is not None:
        flags |= bits[0]
        body += measurement_status.to_bytes(2, "little")
    if device_status is not None:
        flags |= bits[1]
        body += device_status.to_bytes(3, "little")
    if pai is not None:
        flags |= bits[2]
        body += encode_sfloat(pai, -1)
    return flags, body


def encode_plx_spot_check(spo2: Number, pulse: Number, *, timestamp: datetime | None = None,
                          measurement_status: int | None = None,
                          device_status: int | None = None, pai: Number | None = None,
                          clock_not_set: bool = False) -> bytes:
    flags = 0x10 if clock_not_set else 0
    body = encode_sfloat(spo2, 0) + encode_sfloat(pulse, 0)
    if timestamp is not None:
        flags |= 0x01
        body += encode_date_time(timestamp)
    more, tail = _plx_tail(measurement_status, device_status, pai, (0x02, 0x04, 0x08))
    return bytes([flags | more]) + body + tail


def encode_plx_continuous(spo2: Number, pulse: Number, *,
                          fast: tuple[Number, Number] | None = None,
                          slow: tuple[Number, Number] | None = None,
                          measurement_status: int | None = None,
                          device_status: int | None = None, pai: Number | None = None) -> bytes:
    flags = 0
    body = encode_sfloat(spo2, 0) + encode_sfloat(pulse, 0)
    for bit, pair in ((0x01, fast), (0x02, slow)):
        if pair is not None:
            flags |= bit
            body += encode_sfloat(pair[0], 0) + encode_sfloat(pair[1], 0)
    more, tail = _plx_tail(measurement_status, device_status, pai, (0x04, 0x08, 0x10))
    return bytes([flags | more]) + body + tail


def encode_temperature(celsius: float, *, fahrenheit: bool = False,
                       timestamp: datetime | None = None, site: int | None = None) -> bytes:
    """``celsius`` sent to 0.01 degree, converted when ``fahrenheit``."""
    value = celsius * 9 / 5 + 32 if fahrenheit else celsius
    flags = 0x01 if fahrenheit else 0
    body = encode_float(value, -2)
    if timestamp is not None:
        flags |= 0x02
        body += encode_date_time(timestamp)
    if site is not None:
        flags |= 0x04
        body += bytes([site])
    return bytes([flags]) + body


def encode_weight(kg: float | None, *, imperial: bool = False,
                  timestamp: datetime | None = None, user_id: int | None = None,
                  bmi: float | None = None, height_m: float | None = None) -> bytes:
    """``kg`` None sends 0xFFFF, "measurement unsuccessful"."""
    flags = 0x01 if imperial else 0
    if kg is None:
        raw = 0xFFFF
    else:
        raw = round(kg / 0.45359237 / 0.01) if imperial else round(kg / 0.005)
        if not 0 <= raw < 0xFFFF:
            raise ValueError(f"{kg} kg does not fit a weight field")
    body = raw.to_bytes(2, "little")
    if timestamp is not None:
        flags |= 0x02
        body += encode_date_time(timestamp)
    if user_id is not None:
        flags |= 0x04
        body += bytes([user_id])
    if bmi is not None and height_m is not None:
        flags |= 0x08
        height = round(height_m / 0.0254 * 10) if imperial else round(height_m * 1000)
        body += round(bmi * 10).to_bytes(2, "little") + height.to_bytes(2, "little")
    return bytes([flags]) + body


def encode_battery_level(percent: int) -> bytes:
    return bytes([percent])


def encode_itag_press() -> bytes:
    return b"\x01"
