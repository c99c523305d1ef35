"""Bluetooth SIG characteristic parsers (gateway) against published vectors, the simulator's
byte-exact encoders, and arbitrary bytes.

Vectors live in tests/data/ble_profile_vectors.json, each with its source (repository + file +
test, or the spec section it was built from by hand).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homevitals.gateway.errors import GatewayError, ProfileError
from homevitals.gateway.profiles import Decoded, characteristics, decode
from homevitals.gateway.profiles.ieee11073 import decode_float, decode_sfloat
from homevitals.simulators import ble_values as bv
from homevitals.vocab.readings import Measurement
from homevitals.vocab.units import Unit

VECTORS = json.loads(
    (Path(__file__).parent / "data" / "ble_profile_vectors.json").read_text("utf-8")
)["vectors"]


def _subset(expected: dict[str, Any], actual: dict[str, Any]) -> None:
    for key, value in expected.items():
        assert actual[key] == value, f"{key}: {actual[key]!r} != {value!r}"


# -- published and hand-built vectors ---------------------------------------------------------


@pytest.mark.parametrize("vector", [v for v in VECTORS if "expect" in v], ids=lambda v: v["name"])
def test_vector_decodes(vector: dict[str, Any]) -> None:
    decoded = decode(vector["characteristic"], bytes.fromhex(vector["hex"]))
    dump = decoded.to_json()
    expect = vector["expect"]
    if "fields" in expect:
        assert {k: v["value"] for k, v in dump["fields"].items()} == expect["fields"]
    for key in ("flags", "device_time", "sequence", "context", "button", "packet_id"):
        if key in expect:
            assert dump[key] == expect[key], key
    _subset(expect.get("details", {}), dump["details"])
    json.dumps(dump)  # the `homevitals decode` CLI prints exactly this


@pytest.mark.parametrize("vector", [v for v in VECTORS if "error" in v], ids=lambda v: v["name"])
def test_vector_is_rejected_with_its_reason(vector: dict[str, Any]) -> None:
    with pytest.raises(ProfileError) as info:
        decode(vector["characteristic"], bytes.fromhex(vector["hex"]))
    assert str(info.value) == vector["error"]


def test_blood_pressure_reading_shape() -> None:
    d = decode("2A35", bytes.fromhex("1e8a00580078000000041114293b3c00012700"))
    assert d.characteristic == "2A35"
    assert d.measurement is Measurement.BLOOD_PRESSURE
    assert d.fields["systolic"].unit is Unit.MMHG
    assert d.fields["pulse"].unit is Unit.BPM
    assert d.sequence is None and d.button is None


def test_glucose_reading_shape() -> None:
    d = decode("00002a18-0000-1000-8000-00805f9b34fb", bytes.fromhex("020700e807030f081e0064b011"))
    assert d.characteristic == "2A18"
    assert d.measurement is Measurement.GLUCOSE
    assert d.fields["glucose"].unit is Unit.MMOL_PER_L
    assert d.device_time == datetime(2024, 3, 15, 8, 30)
    assert d.device_time is not None and d.device_time.tzinfo is None


def test_glucose_without_concentration_is_not_a_reading() -> None:
    # GSS: bit 1 clear = no concentration; a status-only record carries no measurement.
    d = decode("2A18", bytes.fromhex("080100e807030f081e000800"))
    assert d.measurement is None
    assert d.fields == {}
    assert d.flags == ("strip_insertion_error",)


def test_bthome_none_event_is_not_a_press() -> None:
    # A button object 0x00 ("none") must never become a call for help.
    d = decode("bthome", bytes.fromhex("4400050164" + "3a00"))
    assert d.button is None
    assert d.details["buttons"] == ("none",)


def test_bthome_objects_around_the_button_are_skipped() -> None:
    # Temperature 0x02 (sint16 0.01) and humidity 0x03 (uint16 0.01) before the button object.
    d = decode("bthome", bytes.fromhex("40" + "0009" + "02ca09" + "03bf13" + "3a02"))
    assert (d.packet_id, d.button) == (9, "double_press")
    objects = {o["name"]: o["value"] for o in d.to_json()["details"]["objects"]}
    assert objects["temperature"] == 25.06 and objects["humidity"] == 50.55


# -- negative cases ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hex_value", "message"),
    [
        ("", "0x2A18: needs at least 10 bytes (flags, sequence number, base time), got 0"),
        ("0001", "0x2A18: needs at least 10 bytes (flags, sequence number, base time), got 2"),
        ("010100e807030f081e00", "0x2A18: flags 0x01 announce a time offset but only 10 bytes"),
        ("020100e807030f081e0064", "0x2A18: flags 0x02 announce a glucose concentration"
         " but only 11 bytes"),
        ("020100e807030f081e0064b0", "0x2A18: flags 0x02 announce a type-sample location"
         " but only 12 bytes"),
        ("020100e807021e081e0064b011", "0x2A18: base time 2024-02-30 08:30:00 is not a valid"
         " date and time"),
    ],
)
def test_truncated_or_invalid_glucose(hex_value: str, message: str) -> None:
    with pytest.raises(ProfileError) as info:
        decode("2A18", bytes.fromhex(hex_value))
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("raw", "name"),
    [(0x07FF, "NaN"), (0x0800, "NRes"), (0x07FE, "+INF"), (0x0802, "-INF"), (0x0801, "reserved")],
)
def test_sfloat_specials_are_named(raw: int, name: str) -> None:
    data = bytes.fromhex("00") + raw.to_bytes(2, "little") + bytes.fromhex("58007800")
    with pytest.raises(ProfileError) as info:
        decode("2A35", data)
    assert str(info.value) == f"0x2A35: systolic pressure is SFLOAT {name} (0x{raw:04X})"
    with pytest.raises(ProfileError) as info:
        decode("2A18", bytes.fromhex("020100e807030f081e00") + raw.to_bytes(2, "little") + b"\x11")
    assert str(info.value) == f"0x2A18: glucose concentration is SFLOAT {name} (0x{raw:04X})"


@pytest.mark.parametrize(
    ("raw", "name"),
    [(0x007FFFFF, "NaN"), (0x00800000, "NRes"), (0x007FFFFE, "+INF"), (0x00800002, "-INF"),
     (0x00800001, "reserved")],
)
def test_float_specials_are_named(raw: int, name: str) -> None:
    with pytest.raises(ProfileError) as info:
        decode_float(raw, where="0x2A1C", field="temperature")
    assert str(info.value) == f"0x2A1C: temperature is FLOAT {name} (0x{raw:08X})"


@pytest.mark.parametrize(
    ("raw", "value"),
    [(0x0072, 114.0), (0xF06E, 11.0), (0xFF9C, -10.0), (0xB064, 0.001), (0x2001, 100.0),
     (0x8FFF, -1e-8), (0xF7FF, 204.7)],
)
def test_sfloat_values(raw: int, value: float) -> None:
    # Worked from the SFLOAT layout: 4-bit exponent above a 12-bit mantissa, both signed.
    assert decode_sfloat(raw, where="x", field="f") == value


def test_float_value() -> None:
    # 0xFF00016D: exponent -1, mantissa 365 -> 36.5 (a thermometer reading, worked by hand).
    assert decode_float(0xFF00016D, where="x", field="f") == 36.5


def test_mean_arterial_nan_drops_the_field_but_other_specials_fail() -> None:
    d = decode("2A35", bv.encode_bp_measurement(120, 80, bv.SFLOAT_NAN))
    assert set(d.fields) == {"systolic", "diastolic"}
    with pytest.raises(ProfileError, match=r"mean arterial pressure is SFLOAT \+INF"):
        decode("2A35", bv.encode_bp_measurement(120, 80, bv.SFLOAT_POS_INF))


@pytest.mark.parametrize("name", ["2A38", "0x2a99", "0000180d-0000-1000-8000-00805f9b34fb"])
def test_unknown_characteristic(name: str) -> None:
    with pytest.raises(ProfileError, match="no parser for characteristic 0x"):
        decode(name, b"\x00")


def test_malformed_characteristic_name() -> None:
    with pytest.raises(ProfileError) as info:
        decode("glucose", b"\x00")
    assert str(info.value).startswith("'glucose' is not a characteristic")


def test_bthome_unknown_object_and_undefined_button() -> None:
    with pytest.raises(ProfileError) as info:
        decode("bthome", bytes.fromhex("40002af801"))
    assert str(info.value) == "bthome: unknown object 0xF8 at byte 3: cannot tell where it ends"
    with pytest.raises(ProfileError) as info:
        decode("bthome", bytes.fromhex("403a07"))
    assert str(info.value) == "bthome: button event 0x07 of object 0x3A at byte 1 is not defined"
    with pytest.raises(ProfileError) as info:
        decode("bthome", bytes.fromhex("400245"))
    assert str(info.value) == (
        "bthome: the value of object 0x02 at byte 1 (temperature) is cut short: it takes 2 bytes,"
        " the value ends after 3 bytes with 1 byte left"
    )


def test_profile_error_is_a_gateway_error() -> None:
    assert issubclass(ProfileError, GatewayError)


def test_decoded_checks_itself() -> None:
    with pytest.raises(ValueError, match="naive"):
        Decoded("2A18", device_time=datetime(2024, 1, 1).astimezone())
    with pytest.raises(ValueError, match="at least one field"):
        Decoded("2A18", measurement=Measurement.GLUCOSE)
    with pytest.raises(ValueError, match="button"):
        Decoded("bthome", button="none")


# -- simulator encoders -> gateway parsers ----------------------------------------------------


@pytest.mark.parametrize("unit", ["kg/L", "mol/L"])
@pytest.mark.parametrize("mmol", [2.2, 3.4, 5.5, 7.8, 11.1, 16.7, 25.0, 33.3])
def test_glucose_round_trip(unit: str, mmol: float) -> None:
    base = datetime(2025, 1, 2, 7, 45, 10)
    data = bv.encode_glucose_measurement(
        42, base, mmol, time_offset_min=-30, unit=unit, status={"device_battery_low"},
        context_follows=True,
    )
    d = decode("2A18", data)
    assert abs(d.fields["glucose"].value - mmol) <= 0.05
    assert d.sequence == 42
    assert d.device_time == base - timedelta(minutes=30)
    assert d.flags == ("device_battery_low",)
    assert d.details["context_follows"] is True


def test_glucose_encoding_is_what_a_meter_sends() -> None:
    # 100 mg/dL from a kg/L meter is mantissa 100, exponent -5: 0xB064.
    data = bv.encode_glucose_measurement(7, datetime(2024, 3, 15, 8, 30), 100 / 18.0156)
    assert data == bytes.fromhex("020700e807030f081e0064b011")


@pytest.mark.parametrize("unit", ["mmHg", "kPa"])
def test_bp_round_trip(unit: str) -> None:
    stamp = datetime(2025, 6, 1, 21, 5, 0)
    data = bv.encode_bp_measurement(
        152, 95, 114, unit=unit, timestamp=stamp, pulse=88, user_id=2,
        status_flags=["irregular_pulse", "pulse_above_range"],
    )
    d = decode("2A35", data)
    tolerance = 0.4 if unit == "kPa" else 0
    for name, value in (("systolic", 152), ("diastolic", 95), ("mean_arterial", 114)):
        assert abs(d.fields[name].value - value) <= tolerance
    assert d.fields["pulse"].value == 88
    assert d.device_time == stamp
    assert d.context == {"user_id": "2"}
    assert d.flags == ("irregular_pulse", "pulse_above_range")


def test_bp_encoding_matches_nordic_vector() -> None:
    data = bv.encode_bp_measurement(138, 88, 120, pulse=60, user_id=1, status_flags=[
        "body_movement", "cuff_too_loose", "irregular_pulse", "improper_position"])
    assert data == bytes.fromhex("1c8a00580078003c00012700")  # nordic_bp_full without time


@pytest.mark.parametrize("event", sorted(bv.BUTTON_EVENT_CODES))
def test_bthome_button_round_trip(event: str) -> None:
    d = decode("bthome", bv.encode_bthome_button(200, event, battery=91))
    assert d.packet_id == 200
    assert d.button == (None if event == "none" else event)
    assert d.details["battery"] == {"value": 91, "unit": "%"}


def test_glucose_context_round_trip() -> None:
    data = bv.encode_glucose_context(
        9, meal="postprandial", carbohydrate=("lunch", 62.5), tester="self", health="under_stress"
    )
    d = decode("2A34", data)
    assert d.sequence == 9 and d.measurement is None
    assert d.context == {"carbohydrate": "lunch", "meal": "postprandial", "tester": "self",
                         "health": "under_stress"}
    assert d.details["carbohydrate_amount"] == {"value": 62.5, "unit": "g"}


def test_sfloat_encoder_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        bv.encode_sfloat(2046, 0)
    assert bv.encode_sfloat(-1.5, -1) == bytes.fromhex("f1ff")


# -- fuzzing ----------------------------------------------------------------------------------


@settings(max_examples=400)
@given(name=st.sampled_from(characteristics()), data=st.binary(max_size=40))
def test_any_bytes_decode_or_raise_profile_error(name: str, data: bytes) -> None:
    try:
        decoded = decode(name, data)
    except ProfileError:
        return
    json.dumps(decoded.to_json())


@settings(max_examples=200)
@given(
    name=st.sampled_from(characteristics()),
    flags=st.integers(0, 255),
    data=st.binary(min_size=0, max_size=30),
)
def test_any_flags_decode_or_raise_profile_error(name: str, flags: int, data: bytes) -> None:
    # Start from a plausible prefix so the optional-field branches are reached too.
    prefix = {
        "2A18": b"\x00\x00\xe8\x07\x03\x0f\x08\x1e\x00",
        "2A35": b"\x78\x00\x50\x00\x5d\x00",
    }.get(name, b"")
    first = flags if name != "bthome" else (flags & 0x1F) | 0x40
    try:
        decode(name, bytes([first]) + prefix + data)
    except ProfileError:
        pass


_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))


@given(
    sequence=st.integers(0, 0xFFFF),
    base=_times,
    mmol=st.floats(0.5, 55),  # above 60 mmol/L is implausible
    unit=st.sampled_from(["kg/L", "mol/L"]),
    offset=st.none() | st.integers(-0x8000, 0x7FFF),
    status=st.integers(0, 0x0FFF),
    sample_type=st.integers(1, 10),
    location=st.sampled_from([1, 2, 3, 4, 15]),
)
def test_glucose_round_trip_fuzz(
    sequence: int, base: datetime, mmol: float, unit: str, offset: int | None, status: int,
    sample_type: int, location: int,
) -> None:
    base = base.replace(microsecond=0)
    data = bv.encode_glucose_measurement(sequence, base, mmol, time_offset_min=offset, unit=unit,
                                         status=status, sample_type=sample_type, location=location)
    d = decode("2A18", data)
    assert math.isclose(d.fields["glucose"].value, mmol, abs_tol=0.05 + 1e-9)
    assert d.sequence == sequence
    assert d.device_time == base + timedelta(minutes=offset or 0)
    assert len(d.flags) == bin(status).count("1") + (location == 4 or sample_type == 10)


@given(
    systolic=st.integers(40, 280),
    diastolic=st.integers(20, 200),
    mean=st.integers(20, 250),
    unit=st.sampled_from(["mmHg", "kPa"]),
    stamp=st.none() | _times,
    pulse=st.none() | st.integers(20, 250),
    user=st.none() | st.integers(0, 255),
    status=st.sets(st.sampled_from(["body_movement", "cuff_too_loose", "irregular_pulse",
                                    "pulse_below_range", "improper_position"])),
)
def test_bp_round_trip_fuzz(
    systolic: int, diastolic: int, mean: int, unit: str, stamp: datetime | None,
    pulse: int | None, user: int | None, status: set[str],
) -> None:
    stamp = None if stamp is None else stamp.replace(microsecond=0)
    data = bv.encode_bp_measurement(systolic, diastolic, mean, unit=unit, timestamp=stamp,
                                    pulse=pulse, user_id=user, status_flags=status)
    d = decode("2A35", data)
    tolerance = 0.4 if unit == "kPa" else 0
    assert abs(d.fields["systolic"].value - systolic) <= tolerance
    assert abs(d.fields["diastolic"].value - diastolic) <= tolerance
    assert abs(d.fields["mean_arterial"].value - mean) <= tolerance
    assert d.device_time == stamp
    assert set(d.flags) == status
    assert (d.fields["pulse"].value if "pulse" in d.fields else None) == pulse


@given(packet_id=st.integers(0, 255), event=st.sampled_from(sorted(bv.BUTTON_EVENT_CODES)),
       battery=st.none() | st.integers(0, 100))
def test_bthome_round_trip_fuzz(packet_id: int, event: str, battery: int | None) -> None:
    d = decode("bthome", bv.encode_bthome_button(packet_id, event, battery))
    assert d.packet_id == packet_id
    assert d.button == (None if event == "none" else event)
