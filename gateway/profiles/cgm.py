"""Continuous Glucose Monitoring: CGM Measurement (0x2AA7) and CGM Session Start Time (0x2AAA).

Layouts from CGMS 1.0.1 and the GATT Specification Supplement (GSS). A CGM Measurement
notification carries one or more records back to back, each starting with its own size byte
(CGMS section 3.1: "the Size field ... the size of the CGM Measurement record in octets"), so a
notification of 20 bytes may hold several 6-byte records. A record is: size, flags,
concentration (SFLOAT, mg/dL), time offset (uint16, minutes since the session start), the
Sensor Status Annunciation octets the flags announce (Status, Cal/Temp, Warning, in that
order), trend (SFLOAT, mg/dL/min), quality (SFLOAT, %), then the E2E-CRC when the sensor
supports it. Whether a CRC is there is told by the size: the announced fields plus two bytes.
"""

from __future__ import annotations

from homevitals.gateway.errors import ProfileError
from homevitals.gateway.profiles import plausibility
from homevitals.gateway.profiles.crc import crc16_mcrf4xx
from homevitals.gateway.profiles.decoded import Decoded, Detail
from homevitals.gateway.profiles.ieee11073 import decode_sfloat
from homevitals.gateway.profiles.reader import Reader, date_time
from homevitals.vocab.readings import FieldValue, Measurement
from homevitals.vocab.units import Unit, glucose_mg_per_dl_to_mmol_per_l

__all__ = ["decode_measurement", "decode_session_start_time"]

_WHERE = "0x2AA7"
_START_WHERE = "0x2AAA"

# CGMS 3.1.1.1, Flags.
_TREND = 0x01
_QUALITY = 0x02
_WARNING = 0x20
_CAL_TEMP = 0x40
_STATUS = 0x80

# CGMS 3.1.1.5, Sensor Status Annunciation, octet by octet (bits 0-7 each).
_STATUS_BITS = ("session_stopped", "device_battery_low", "sensor_type_incorrect",
                "sensor_malfunction", "device_specific_alert", "general_device_fault")
_CAL_TEMP_BITS = ("time_synchronization_required", "calibration_not_allowed",
                  "calibration_recommended", "calibration_required",
                  "sensor_temperature_high", "sensor_temperature_low")
_WARNING_BITS = ("result_below_patient_low", "result_above_patient_high",
                 "result_below_hypo_level", "result_above_hyper_level",
                 "rate_of_decrease_exceeded", "rate_of_increase_exceeded",
                 "result_below_device_range", "result_above_device_range")

# GSS DST Offset codes.
_DST = {0: 0, 2: 30, 4: 60, 8: 120}
_DST_UNKNOWN = 255
_TZ_UNKNOWN = -128


def _bits(raw: int, names: tuple[str, ...]) -> list[str]:
    return [name for bit, name in enumerate(names) if raw & (1 << bit)]


def decode_measurement(data: bytes) -> Decoded:
    """All records of one CGM Measurement notification; the outer value carries ``records``."""
    if not data:
        raise ProfileError(f"{_WHERE}: empty value (a record needs at least 6 bytes)")
    records: list[Decoded] = []
    pos = 0
    while pos < len(data):
        size = data[pos]
        if size < 6:
            raise ProfileError(f"{_WHERE}: record {len(records) + 1} at byte {pos} announces"
                               f" size {size}, below the minimum of 6")
        if pos + size > len(data):
            raise ProfileError(f"{_WHERE}: record {len(records) + 1} at byte {pos} announces"
                               f" {size} bytes but only {len(data) - pos} remain")
        records.append(_record(data[pos:pos + size], len(records) + 1))
        pos += size
    details: dict[str, Detail] = {"records": len(records)}
    return Decoded(characteristic="2AA7", records=tuple(records), details=details)


def _record(data: bytes, number: int) -> Decoded:
    where = f"{_WHERE} record {number}"
    r = Reader(data, where)
    size = r.uint(1, "the size", optional=False)
    r.flags = flags = r.uint(1, "the flags", optional=False)
    expected = 6 + 2 * bool(flags & _TREND) + 2 * bool(flags & _QUALITY) + sum(
        bool(flags & bit) for bit in (_STATUS, _CAL_TEMP, _WARNING))
    if size not in (expected, expected + 2):
        raise ProfileError(f"{where}: flags 0x{flags:02X} announce {expected} bytes"
                           f" ({expected + 2} with E2E-CRC), but the size is {size}")
    details: dict[str, Detail] = {"size": size, "flags": f"0x{flags:02X}"}
    if size == expected + 2:
        _check_crc(data, expected, where, details)
    mg_dl = decode_sfloat(r.uint(2, "a glucose concentration"), where=where,
                          field="glucose concentration")
    mmol = round(glucose_mg_per_dl_to_mmol_per_l(mg_dl), 3)
    plausibility.check(where, "glucose", mmol, mg_dl, "mg/dL")
    offset = r.uint(2, "a time offset")
    details["glucose_concentration"] = {"value": mg_dl, "unit": "mg/dL"}
    details["time_offset"] = {"value": offset, "unit": "min"}
    flags_out: list[str] = []
    for bit, names, label in ((_STATUS, _STATUS_BITS, "status"),
                              (_CAL_TEMP, _CAL_TEMP_BITS, "cal_temp"),
                              (_WARNING, _WARNING_BITS, "warning")):
        if flags & bit:
            octet = r.uint(1, f"a {label.replace('_', '/')} octet")
            details[f"{label}_octet"] = f"0x{octet:02X}"
            flags_out += _bits(octet, names)
    if flags & _TREND:
        details["trend"] = {"value": decode_sfloat(r.uint(2, "a trend"), where=where,
                                                   field="trend"), "unit": "mg/dL/min"}
    if flags & _QUALITY:
        details["quality"] = {"value": decode_sfloat(r.uint(2, "a quality"), where=where,
                                                     field="quality"), "unit": "%"}
    return Decoded(characteristic="2AA7", measurement=Measurement.GLUCOSE,
                   fields={"glucose": FieldValue(mmol, Unit.MMOL_PER_L)},
                   flags=tuple(flags_out), time_offset=offset, details=details,
                   context={"glucose_type": "interstitial_fluid"})


def _check_crc(data: bytes, covered: int, where: str, details: dict[str, Detail]) -> None:
    sent = int.from_bytes(data[covered:covered + 2], "little")
    actual = crc16_mcrf4xx(data[:covered])
    if sent != actual:
        raise ProfileError(f"{where}: E2E-CRC 0x{sent:04X} does not match the record"
                           f" (computed 0x{actual:04X}): corrupted on the way")
    details["e2e_crc"] = f"0x{sent:04X}"


def decode_session_start_time(data: bytes) -> Decoded:
    """CGM Session Start Time: Date Time, Time Zone (sint8, 15 min), DST Offset, [E2E-CRC]."""
    r = Reader(data, _START_WHERE)
    if len(data) not in (9, 11):
        raise ProfileError(f"{_START_WHERE}: needs 9 bytes (date time, time zone, DST offset)"
                           f" or 11 with E2E-CRC, got {len(data)}")
    if len(data) == 11:
        sent = int.from_bytes(data[9:11], "little")
        if sent != crc16_mcrf4xx(data[:9]):
            raise ProfileError(f"{_START_WHERE}: E2E-CRC 0x{sent:04X} does not match"
                               f" (computed 0x{crc16_mcrf4xx(data[:9]):04X})")
    start, text = date_time(r.take(7, "the start time", optional=False), where=_START_WHERE,
                            field="session start time")
    tz = r.sint(1, "the time zone", optional=False)
    dst = r.uint(1, "the DST offset", optional=False)
    details: dict[str, Detail] = {"session_start_time": text}
    if tz != _TZ_UNKNOWN and not -48 <= tz <= 56:
        raise ProfileError(f"{_START_WHERE}: time zone {tz} is outside -48..56 (15-minute steps)")
    if dst != _DST_UNKNOWN and dst not in _DST:
        raise ProfileError(f"{_START_WHERE}: DST offset code {dst} is not defined")
    details["time_zone"] = None if tz == _TZ_UNKNOWN else {"value": tz * 15, "unit": "min"}
    details["dst_offset"] = None if dst == _DST_UNKNOWN else {"value": _DST[dst], "unit": "min"}
    if tz != _TZ_UNKNOWN and dst != _DST_UNKNOWN:
        details["utc_offset_min"] = tz * 15 + _DST[dst]
    return Decoded(characteristic="2AAA", device_time=start, details=details)
