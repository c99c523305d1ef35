"""Pulse oximetry: PLX Spot-check Measurement (0x2A5E) and PLX Continuous Measurement (0x2A5F).

PLXS 1.0 / GSS. Spot-check: flags; SpO2 and pulse rate (SFLOAT, % and bpm); then the time stamp,
Measurement Status (uint16), Device and Sensor Status (uint24) and Pulse Amplitude Index (SFLOAT,
%) that the flags announce. Continuous: flags; SpO2PR-Normal; then SpO2PR-Fast, SpO2PR-Slow, the
two statuses and the PAI. A finger taken off the probe reads NaN (PLXS: "the value ... shall be
set to NaN if not available"): NaN drops the field, and with neither SpO2 nor pulse rate left
the value is no reading at all. Any other special value is an error.
"""

from __future__ import annotations

from datetime import datetime

from homevitals.gateway.profiles import plausibility
from homevitals.gateway.profiles.decoded import Decoded, Detail
from homevitals.gateway.profiles.ieee11073 import decode_sfloat, sfloat_special
from homevitals.gateway.profiles.reader import Reader, date_time
from homevitals.vocab.readings import FieldValue, Measurement
from homevitals.vocab.units import Unit

__all__ = ["decode_continuous", "decode_spot_check"]

# GSS PLX Measurement Status bits 5-15 (0-4 reserved).
_MEASUREMENT_STATUS = {5: "measurement_ongoing", 6: "early_estimated_data",
                       7: "validated_data", 8: "fully_qualified_data",
                       9: "data_from_measurement_storage", 10: "data_for_demonstration",
                       11: "data_for_testing", 12: "calibration_ongoing",
                       13: "measurement_unavailable", 14: "questionable_measurement",
                       15: "invalid_measurement"}
# GSS PLX Device and Sensor Status bits 0-15.
_DEVICE_STATUS = ("extended_display_update_ongoing", "equipment_malfunction",
                  "signal_processing_irregularity", "inadequate_signal", "poor_signal",
                  "low_perfusion", "erratic_signal", "nonpulsatile_signal", "questionable_pulse",
                  "signal_analysis_ongoing", "sensor_interference", "sensor_unconnected",
                  "unknown_sensor", "sensor_displaced", "sensor_malfunctioning",
                  "sensor_disconnected")


def _pair(r: Reader, where: str, label: str, optional: bool) -> tuple[float | None, float | None]:
    values: list[float | None] = []
    for what, field in (("SpO2", "SpO2"), ("pulse rate", "pulse rate")):
        raw = r.uint(2, f"{label} {what}", optional=optional)
        values.append(None if sfloat_special(raw) == "NaN" else
                      decode_sfloat(raw, where=where, field=f"{label} {field}"))
    return values[0], values[1]


def _statuses(r: Reader, flags: int, status_bit: int, device_bit: int,
              details: dict[str, Detail]) -> list[str]:
    names: list[str] = []
    if flags & status_bit:
        raw = r.uint(2, "a measurement status")
        bits = [n for b, n in _MEASUREMENT_STATUS.items() if raw & (1 << b)]
        details["measurement_status"] = {"raw": f"0x{raw:04X}", "flags": tuple(bits)}
        names += bits
    if flags & device_bit:
        raw = r.uint(3, "a device and sensor status")
        bits = [n for b, n in enumerate(_DEVICE_STATUS) if raw & (1 << b)]
        details["device_and_sensor_status"] = {"raw": f"0x{raw:06X}", "flags": tuple(bits)}
        names += bits
    return names


def _pai(r: Reader, where: str, details: dict[str, Detail]) -> None:
    raw = r.uint(2, "a pulse amplitude index")
    details["pulse_amplitude_index"] = (
        "NaN" if sfloat_special(raw) == "NaN"
        else {"value": decode_sfloat(raw, where=where, field="pulse amplitude index"),
              "unit": "%"})


def _result(characteristic: str, where: str, spo2: float | None, pulse: float | None,
            flags: list[str], details: dict[str, Detail],
            device_time: datetime | None = None) -> Decoded:
    fields: dict[str, FieldValue] = {}
    if spo2 is not None:
        fields["spo2"] = FieldValue(plausibility.check(where, "spo2", spo2, spo2, "%"),
                                    Unit.PERCENT)
    if pulse is not None:
        fields["pulse"] = FieldValue(plausibility.check(where, "pulse", pulse, pulse, "bpm"),
                                     Unit.BPM)
    details["spo2"] = "NaN" if spo2 is None else {"value": spo2, "unit": "%"}
    details["pulse"] = "NaN" if pulse is None else {"value": pulse, "unit": "bpm"}
    # "measurement unavailable" / "invalid measurement": the device itself disowns the value.
    disowned = {"measurement_unavailable", "invalid_measurement"} & set(flags)
    if not fields or disowned:
        details["no_measurement"] = ", ".join(sorted(disowned)) or "SpO2 and pulse rate NaN"
        return Decoded(characteristic=characteristic, flags=tuple(flags), details=details,
                       device_time=device_time)
    return Decoded(characteristic=characteristic, measurement=Measurement.SPO2, fields=fields,
                   flags=tuple(flags), details=details, device_time=device_time)


def decode_spot_check(data: bytes) -> Decoded:
    where = "0x2A5E"
    r = Reader(data, where)
    r.require(5, "flags, SpO2, pulse rate")
    r.flags = flags = r.uint(1, "the flags", optional=False)
    spo2, pulse = _pair(r, where, "the", optional=False)
    details: dict[str, Detail] = {"flags": f"0x{flags:02X}"}
    device_time = None
    if flags & 0x01:
        device_time, details["time_stamp"] = date_time(r.take(7, "a time stamp"), where=where,
                                                       field="time stamp")
    if flags & 0x10:
        # PLXS: "Device Clock is Not Set": the time stamp is not a real time.
        details["device_clock_not_set"] = True
        device_time = None
    names = _statuses(r, flags, 0x02, 0x04, details)
    if flags & 0x08:
        _pai(r, where, details)
    return _result("2A5E", where, spo2, pulse, names, details, device_time=device_time)


def decode_continuous(data: bytes) -> Decoded:
    where = "0x2A5F"
    r = Reader(data, where)
    r.require(5, "flags, SpO2PR-Normal")
    r.flags = flags = r.uint(1, "the flags", optional=False)
    spo2, pulse = _pair(r, where, "the normal", optional=False)
    details: dict[str, Detail] = {"flags": f"0x{flags:02X}"}
    for bit, label in ((0x01, "fast"), (0x02, "slow")):
        if flags & bit:
            s, p = _pair(r, where, f"a {label}", optional=True)
            details[f"spo2_{label}"] = "NaN" if s is None else {"value": s, "unit": "%"}
            details[f"pulse_{label}"] = "NaN" if p is None else {"value": p, "unit": "bpm"}
    names = _statuses(r, flags, 0x04, 0x08, details)
    if flags & 0x10:
        _pai(r, where, details)
    return _result("2A5F", where, spo2, pulse, names, details)
