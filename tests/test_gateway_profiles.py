"""Device profiles added for issue 4 - CGM, heart rate, pulse oximeter, thermometer, scale,
battery, iTag - against published vectors (tests/data/ble_device_vectors.json, each with its
source), plausibility limits, the named vendor quirks (one test each), and fuzzing."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homevitals.gateway.errors import ProfileError
from homevitals.gateway.profiles import characteristics, decode
from homevitals.gateway.profiles.crc import crc16_mcrf4xx
from homevitals.simulators import ble_values as bv
from homevitals.simulators import ble_values_ext as bx
from homevitals.vocab.readings import Measurement

VECTORS = json.loads(
    (Path(__file__).parent / "data" / "ble_device_vectors.json").read_text("utf-8")
)["vectors"]


def _check(expect: dict[str, Any], dump: dict[str, Any]) -> None:
    if "fields" in expect:
        assert {k: v["value"] for k, v in dump["fields"].items()} == expect["fields"]
    for key in ("flags", "device_time", "context", "button", "time_offset"):
        if key in expect:
            assert dump[key] == expect[key], key
    for key, value in expect.get("details", {}).items():
        assert dump["details"][key] == value, key


@pytest.mark.parametrize("vector", [v for v in VECTORS if "error" not in v],
                         ids=lambda v: v["name"])
def test_vector_decodes(vector: dict[str, Any]) -> None:
    dump = decode(vector["characteristic"], bytes.fromhex(vector["hex"])).to_json()
    json.dumps(dump)
    if "records" in vector:
        assert len(dump["records"]) == len(vector["records"])
        for expect, record in zip(vector["records"], dump["records"], strict=True):
            _check(expect, record)
    else:
        _check(vector["expect"], dump)


@pytest.mark.parametrize("vector", [v for v in VECTORS if "error" in v], ids=lambda v: v["name"])
def test_vector_is_rejected_with_its_reason(vector: dict[str, Any]) -> None:
    with pytest.raises(ProfileError) as info:
        decode(vector["characteristic"], bytes.fromhex(vector["hex"]))
    assert str(info.value) == vector["error"]


def test_crc16_mcrf4xx_check_value() -> None:
    # The catalogued check value of CRC-16/MCRF4XX over "123456789".
    assert crc16_mcrf4xx(b"123456789") == 0x6F91
    assert bx.crc16_mcrf4xx(b"123456789") == 0x6F91


# -- plausibility ----------------------------------------------------------------------------


def test_glucose_above_60_mmol_is_rejected_naming_value_and_unit() -> None:
    data = bv.encode_glucose_measurement(3, datetime(2025, 1, 1, 8, 0), 61.0, unit="mol/L")
    with pytest.raises(ProfileError) as info:
        decode("2A18", data)
    assert str(info.value).startswith("0x2A18: glucose 0.061 mol/L is 61 mmol/L, implausible"
                                      " (above 60 mmol/L)")


def test_low_glucose_is_never_implausible() -> None:
    # A severe hypo is exactly what must get through.
    data = bv.encode_glucose_measurement(3, datetime(2025, 1, 1, 3, 0), 1.1, unit="mol/L",
                                         status={"result_below_range"})
    d = decode("2A18", data)
    assert d.fields["glucose"].value == 1.1 and d.flags == ("result_below_range",)


def test_cgm_glucose_above_60_mmol_is_rejected() -> None:
    data = bx.encode_cgm_measurement([bx.CgmRecord(5.5, 1), bx.CgmRecord(70.0, 2)])
    with pytest.raises(ProfileError, match=r"^0x2AA7 record 2: glucose 1261 mg/dL is 69\.99"):
        decode("2AA7", data)


def test_heart_rate_above_350_is_rejected() -> None:
    with pytest.raises(ProfileError) as info:
        decode("2A37", bx.encode_heart_rate(400, uint16=True))
    assert str(info.value) == ("0x2A37: heart rate 400 bpm implausible (above 350 bpm):"
                               " is the value byte-swapped?")


def test_blood_pressure_in_kpa_flagged_as_mmhg_is_rejected() -> None:
    with pytest.raises(ProfileError, match="pressure 1200 mmHg implausible"):
        decode("2A35", bv.encode_bp_measurement(1200, 80, 93))


# -- quirks, one test each --------------------------------------------------------------------


def _bp_big_endian() -> bytes:
    # 120/80/93 mmHg, pulse 72 and status "irregular pulse" written most significant byte first.
    return bytes.fromhex("14" "7800" "5000" "5d00" "0048" "0004")


def test_quirk_bp_big_endian_pulse_status() -> None:
    with pytest.raises(ProfileError, match="pulse -2.048e\\+07 bpm implausible"):
        decode("2A35", _bp_big_endian())
    d = decode("2A35", _bp_big_endian(), ["bp_big_endian_pulse_status"])
    assert d.fields["pulse"].value == 72
    assert d.flags == ("irregular_pulse",)
    assert d.details["quirks_applied"] == ("bp_big_endian_pulse_status",)
    assert d.details["standard_value"] == "1478005000" "5d00" "4800" "0400"


def test_quirk_bp_big_endian_leaves_other_characteristics_alone() -> None:
    data = bv.encode_glucose_measurement(1, datetime(2025, 1, 1), 5.5)
    assert decode("2A18", data, ["bp_big_endian_pulse_status"]) == decode("2A18", data)


def test_quirk_glucose_mg_dl_without_exponent() -> None:
    data = bytes.fromhex("020700e807030f081e00640011")  # 100 "kg/L" = 100 mg/dL really
    d = decode("2A18", data, ["glucose_mg_dl_without_exponent"])
    assert d.fields["glucose"].value == 5.551
    assert d.details["quirks_applied"] == ("glucose_mg_dl_without_exponent",)
    # A meter with the quirk configured that sends the standard encoding is not rewritten.
    good = bv.encode_glucose_measurement(7, datetime(2024, 3, 15, 8, 30), 100 / 18.0156)
    assert decode("2A18", good, ["glucose_mg_dl_without_exponent"]).fields["glucose"].value \
        == 5.551
    assert "quirks_applied" not in decode("2A18", good, ["glucose_mg_dl_without_exponent"]).details


# -- encoders round trip ----------------------------------------------------------------------


@given(mmol=st.floats(2.2, 33.0), offsets=st.lists(st.integers(0, 0xFFFF), min_size=1,
                                                     max_size=3),
       trend=st.none() | st.floats(-5, 5), quality=st.none() | st.floats(0, 100),
       status=st.integers(0, 0x3F), cal=st.integers(0, 0x3F), warning=st.integers(0, 0xFF),
       crc=st.booleans())
def test_cgm_round_trip(mmol: float, offsets: list[int], trend: float | None,
                        quality: float | None, status: int, cal: int, warning: int,
                        crc: bool) -> None:
    records = [bx.CgmRecord(mmol, o, trend, quality, status, cal, warning, crc) for o in offsets]
    d = decode("2AA7", bx.encode_cgm_measurement(records))
    assert [r.time_offset for r in d.records] == offsets
    for r in d.records:
        assert r.measurement is Measurement.GLUCOSE
        assert math.isclose(r.fields["glucose"].value, mmol, abs_tol=0.03)
        assert len(r.flags) == bin(status).count("1") + bin(cal).count("1") + bin(
            warning).count("1")


@given(bpm=st.integers(30, 300), contact=st.none() | st.just(True),
       energy=st.none() | st.integers(0, 0xFFFF),
       rr=st.lists(st.floats(300, 2000), max_size=4))
def test_heart_rate_round_trip(bpm: int, contact: bool | None, energy: int | None,
                               rr: list[float]) -> None:
    d = decode("2A37", bx.encode_heart_rate(bpm, contact=contact, energy_kj=energy, rr_ms=rr))
    assert d.fields["heart_rate"].value == bpm
    assert (d.fields["energy_expended"].value if energy is not None else None) == energy
    if rr:
        got = d.to_json()["details"]["rr_intervals"]["value"]
        assert all(abs(a - b) <= 1.0 for a, b in zip(got, rr, strict=True))


@given(spo2=st.integers(50, 100), pulse=st.integers(30, 250),
       stamp=st.none() | st.datetimes(datetime(2000, 1, 1), datetime(2099, 1, 1)))
def test_plx_round_trip(spo2: int, pulse: int, stamp: datetime | None) -> None:
    stamp = None if stamp is None else stamp.replace(microsecond=0)
    d = decode("2A5E", bx.encode_plx_spot_check(spo2, pulse, timestamp=stamp))
    assert (d.fields["spo2"].value, d.fields["pulse"].value) == (spo2, pulse)
    assert d.device_time == stamp
    c = decode("2A5F", bx.encode_plx_continuous(spo2, pulse, fast=(spo2, pulse)))
    assert c.fields["spo2"].value == spo2


@given(celsius=st.floats(30, 43), fahrenheit=st.booleans(), site=st.none() | st.integers(1, 9))
def test_temperature_round_trip(celsius: float, fahrenheit: bool, site: int | None) -> None:
    d = decode("2A1C", bx.encode_temperature(celsius, fahrenheit=fahrenheit, site=site))
    assert math.isclose(d.fields["temperature"].value, celsius, abs_tol=0.01)


@given(kg=st.floats(2, 290), imperial=st.booleans(), user=st.none() | st.integers(0, 255))
def test_weight_round_trip(kg: float, imperial: bool, user: int | None) -> None:
    d = decode("2A9D", bx.encode_weight(kg, imperial=imperial, user_id=user, bmi=22.5,
                                        height_m=1.75))
    assert math.isclose(d.fields["weight"].value, kg, abs_tol=0.01)


# -- fuzz: only ProfileError may escape -------------------------------------------------------


@settings(max_examples=600)
@given(name=st.sampled_from(characteristics()), data=st.binary(max_size=48),
       quirks=st.sets(st.sampled_from(["bp_big_endian_pulse_status",
                                       "glucose_mg_dl_without_exponent"])))
def test_any_bytes_with_any_quirks_decode_or_raise_profile_error(
    name: str, data: bytes, quirks: set[str]
) -> None:
    try:
        decoded = decode(name, data, quirks)
    except ProfileError:
        return
    json.dumps(decoded.to_json())
    for field in decoded.fields.values():
        assert math.isfinite(field.value)


@settings(max_examples=300)
@given(records=st.lists(st.binary(min_size=6, max_size=17), min_size=1, max_size=3))
def test_cgm_size_framed_garbage(records: list[bytes]) -> None:
    # Well-framed records with arbitrary contents: exercises the per-record paths.
    data = b"".join(bytes([len(r)]) + r[1:] for r in records)
    try:
        decode("2AA7", data)
    except ProfileError:
        pass
