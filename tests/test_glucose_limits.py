"""A glucose limit means the same in mmol/L and in mg/dL (homevitals.vocab.units.glucose_limit).

A CGM sends whole mg/dL; the gateway stores mmol/L to 3 decimals, so 54 mg/dL arrives as 2.997,
below 3.0 as a number but not below 54 mg/dL, the ADA's level 2. Each value here goes the way a
reading goes: bytes of a CGM record -> the gateway's decoder -> the shipped rule and the report.
"""

from __future__ import annotations

import pytest
from rules_helpers import DEFAULTS

from homevitals.gateway.profiles.cgm import decode_measurement
from homevitals.reports.metrics import HIGH_1, HIGH_2, LOW_1, LOW_2
from homevitals.rules.kinds.threshold import ThresholdRuleConfig
from homevitals.simulators.ble_values_ext import CgmRecord, encode_cgm_measurement
from homevitals.vocab.units import MGDL_PER_MMOLL


def as_stored(mg_dl: int) -> float:
    """What the gateway stores for a CGM reading of ``mg_dl``."""
    data = encode_cgm_measurement([CgmRecord(mg_dl / MGDL_PER_MMOLL, 1)])
    [record] = decode_measurement(data).records
    value = record.fields["glucose"].value
    assert isinstance(value, float)
    return value


def rule(rule_id: str) -> ThresholdRuleConfig:
    [d] = [r for r in DEFAULTS if r["id"] == rule_id]
    return ThresholdRuleConfig.model_validate(d)


def test_the_gateway_stores_54_mg_dl_as_2_997() -> None:
    assert as_stored(54) == 2.997
    assert as_stored(70) == 3.886


@pytest.mark.parametrize(("mg_dl", "very_low"), [(53, True), (54, False), (55, False)])
def test_the_report_counts_below_54_mg_dl_as_level_2(mg_dl: int, very_low: bool) -> None:
    assert (as_stored(mg_dl) < LOW_2) is very_low


@pytest.mark.parametrize(("mg_dl", "low"), [(69, True), (70, False)])
def test_the_report_counts_below_70_mg_dl_as_low(mg_dl: int, low: bool) -> None:
    assert (as_stored(mg_dl) < LOW_1) is low


@pytest.mark.parametrize(("mg_dl", "above_10", "above_13_9"),
                         [(180, False, False), (181, True, False), (250, True, False),
                          (251, True, True)])
def test_high_limits_on_a_cgm(mg_dl: int, above_10: bool, above_13_9: bool) -> None:
    assert (as_stored(mg_dl) > HIGH_1, as_stored(mg_dl) > HIGH_2) == (above_10, above_13_9)


def test_the_report_keeps_exact_mmol_l_values() -> None:
    assert 2.98 < LOW_2 and not 3.0 < LOW_2 and not 3.9 < LOW_1 and not 10.0 > HIGH_1


@pytest.mark.parametrize(("mg_dl", "level_2"), [(53, True), (54, True), (55, False)])
def test_the_alarm_takes_a_cgm_at_54_mg_dl_as_level_2(mg_dl: int, level_2: bool) -> None:
    """The rules judge the number: 54 mg/dL (2.997) is below 3.0, within the sensor's error of
    a level-2 low; the held-out cohort lost 2 of 18 level-2 lows the other way."""
    assert rule("hypo-level-2").breaches(as_stored(mg_dl)) is level_2


def test_the_urgent_low_is_below_2_2_mmol_l() -> None:
    assert rule("hypo-level-2-urgent").breaches(as_stored(39))  # 2.165
    assert not rule("hypo-level-2-urgent").breaches(as_stored(40))  # 2.220


def test_a_level_2_low_clears_at_3_0() -> None:
    r = rule("hypo-level-2")  # clear_at 3.0 since the fifth round: "still level 2" is below 3.0
    assert not r.clears(as_stored(54)) and not r.clears(2.98)
    assert r.clears(as_stored(55)) and r.clears(3.0)
