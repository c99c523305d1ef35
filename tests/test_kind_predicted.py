"""The ``predicted`` kind (rules/kinds/predicted.py, issue 19): its forecasts, with values computed
by hand, and the rule through the engine with the shipped glucose-low episode."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from rules_helpers import ROOT, config, engine, story

from homevitals.alerts.text import alert_text
from homevitals.rules.conditions import Sample, Window
from homevitals.rules.kinds.predicted import PredictedRuleConfig, ar2, evaluate, gate, linear
from homevitals.vocab import wire
from homevitals.vocab.units import MGDL_PER_MMOLL

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def _stream(values: list[float], step: float = 5.0, start: float = 0.0) -> list[Sample]:
    return [Sample(T0 + timedelta(minutes=start + i * step), v, f"r{i}")
            for i, v in enumerate(values)]


def _rule(**kw: object) -> PredictedRuleConfig:
    return PredictedRuleConfig.model_validate(
        {"id": "p", "kind": "predicted", "reason": "Low glucose predicted", **kw})


def test_linear_extends_the_least_squares_trend() -> None:
    # Exactly linear: -0.06 mmol/L/min; 20 min after 5.1 is 5.1 - 1.2 = 3.9.
    assert linear(_stream([6.0, 5.7, 5.4, 5.1]), 20, 20) == pytest.approx(3.9)
    # Noisy: x = -15, -10, -5, 0 (mean -7.5), y mean 5.55, Sxx = 125, Sxy = -7.0, so
    # b = -0.056, a = 5.55 - 0.056 * 7.5 = 5.13, and at +20 min: 5.13 - 1.12 = 4.01.
    assert linear(_stream([6.0, 5.6, 5.5, 5.1]), 20, 20) == pytest.approx(4.01)
    # Only the last 15 minutes: the first reading (20 min old) is left out of a 15-min fit.
    assert linear(_stream([9.0, 6.0, 5.7, 5.4, 5.1]), 20, 15) == pytest.approx(3.9)


def test_ar2_is_nightscouts_forecast_in_log_space() -> None:
    # 154 then 140 mg/dL: x[-1] = ln(154/140) = ln 1.1 = 0.0953102, x[0] = ln(140/140) = 0.
    # x1 = -0.723*0.0953102 + 1.716*0         = -0.0689093
    # x2 = -0.723*0         + 1.716*-0.0689093 = -0.1182483
    # x3 = -0.723*-0.0689093 + 1.716*-0.1182483 = -0.1530917
    # x4 = -0.723*-0.1182483 + 1.716*-0.1530917 = -0.1772131
    # 20 min ahead (4 steps): 140 * exp(-0.1772131) = 117.26 mg/dL (Nightscout shows 117).
    s = _stream([154 / MGDL_PER_MMOLL, 140 / MGDL_PER_MMOLL])
    got = ar2(s, 20)
    assert got is not None
    assert got * MGDL_PER_MMOLL == pytest.approx(140 * math.exp(-0.1772131), abs=1e-3)
    assert round(got * MGDL_PER_MMOLL) == 117
    # 15 min ahead is x3: 140 * exp(-0.1530917) = 120.13 mg/dL; 17.5 min is halfway in x.
    assert ar2(s, 15) * MGDL_PER_MMOLL == pytest.approx(120.13, abs=0.01)  # type: ignore[operator]
    half = 140 * math.exp((-0.1530917 - 0.1772131) / 2)
    assert ar2(s, 17.5) * MGDL_PER_MMOLL == pytest.approx(half, abs=1e-3)  # type: ignore[operator]


def test_ar2_uses_the_value_five_minutes_ago_when_readings_are_further_apart() -> None:
    # 10 minutes apart, 160 -> 140: the value 5 minutes ago is interpolated, 150 mg/dL.
    s = _stream([160 / MGDL_PER_MMOLL, 140 / MGDL_PER_MMOLL], step=10)
    ref = _stream([150 / MGDL_PER_MMOLL, 140 / MGDL_PER_MMOLL])
    assert ar2(s, 20) == pytest.approx(ar2(ref, 20))


def test_ar2_clamps_like_nightscout() -> None:
    s = _stream([3.0, 2.2])  # falling steeply towards nothing: never below 36 mg/dL
    assert ar2(s, 30) == pytest.approx(36 / MGDL_PER_MMOLL)
    assert ar2(_stream([1.8, 1.9]), 20) is None  # below 36 mg/dL: Nightscout does not forecast


def test_gate_refuses_gaps_jumps_and_a_stream_that_has_just_started() -> None:
    rule = _rule()
    steady = [6.0, 5.9, 5.8, 5.7, 5.6, 5.5, 5.4]  # 30 minutes, unbroken
    assert gate(rule, _stream(steady)) is None
    assert gate(rule, _stream(steady[:5])) == "warm-up"  # 20 minutes: a new sensor
    gap = _stream(steady) + [Sample(T0 + timedelta(minutes=45), 5.3, "late")]
    assert gate(rule, gap) == "gap"  # 15 minutes without a reading
    # A compression low: 5.5 -> 3.5 in 5 minutes is 0.4 mmol/L/min, faster than physiology.
    jump = _stream([6.0, 5.9, 5.8, 5.7, 5.6, 5.5, 3.5])
    assert gate(rule, jump) == "jump"
    # After a gap the stream must settle again before anything is forecast.
    late = _stream(steady) + _stream([5.3, 5.2, 5.1], start=60)
    assert gate(rule, late) == "warm-up"


def test_evaluate_fires_only_on_a_prediction_confirmed_and_not_yet_low() -> None:
    falling = [6.4, 6.1, 5.8, 5.5, 5.2, 4.9, 4.6, 4.3]  # -0.06 mmol/L/min
    rule = _rule(predictor="linear", confirm_readings=2)
    fc, fires = evaluate(rule, Window(_stream(falling)))
    assert fc is not None and fc.value == pytest.approx(4.3 - 1.2) and not fires  # 3.1
    fc, fires = evaluate(rule, Window(_stream([*falling, 4.0])))
    assert not fires  # 2.8 now, but the reading before predicted 3.1: not confirmed yet
    fc, fires = evaluate(rule, Window(_stream([*falling, 4.0, 3.7])))
    assert fires and fc is not None and fc.value == pytest.approx(2.5)
    assert fc.trend == pytest.approx(-0.06) and fc.now == 3.7
    # Already below 3.0: that is the level-2 rule's business, not a prediction.
    _, fires = evaluate(rule, Window(_stream([*falling, 4.0, 3.7, 3.4, 3.1, 2.9])))
    assert not fires
    # A noisy but flat stream never predicts a low.
    flat = [5.2, 5.6, 5.0, 5.5, 5.1, 5.4, 5.0, 5.3, 5.1]
    for predictor in ("linear", "ar2"):
        assert not evaluate(_rule(predictor=predictor), Window(_stream(flat)))[1]


# --- through the rule engine, with the shipped glucose-low episode ------------------------------

DEFAULTS = yaml.safe_load((ROOT / "configs/rules-defaults.yaml").read_text())["definitions"]
GLUCOSE = [r for r in DEFAULTS if r.get("episode") == "glucose-low"]
# 30 minutes steady at 7.0, then a fall of 0.3 mmol/L every 5 minutes (slower than the fast-fall
# rule's 2 mmol/L in 30 minutes) to 2.8, a quarter of an hour there, and back.
NIGHT = [7.0] * 7 + [6.7, 6.4, 6.1, 5.8, 5.5, 5.2, 4.9, 4.6, 4.3, 4.0, 3.7, 3.4, 3.1, 2.8,
                     2.8, 2.8, 3.2, 3.6, 4.0, 4.5, 5.0]


def _with(predictor: str) -> list[dict[str, object]]:
    return [{**r, "predictor": predictor} if r["kind"] == "predicted" else r for r in GLUCOSE]


def test_a_predicted_low_opens_the_episode_and_level_2_updates_it(tmp_path: Path) -> None:
    e = engine(tmp_path, config(_with("linear")))
    got = story(e, NIGHT)
    assert [(m, str(d.state), d.rule, str(d.severity)) for m, d in got] == [
        (85, "firing", "glucose-low-predicted", "medium"),  # 3.7 now, 2.5 predicted
        # 2.8 twice (level 2 on a CGM: a second reading, issue 14): the same alert, one update
        (105, "updated", "hypo-level-2", "high"),
        (115, "updated", "hypo-level-1", "medium"),  # 3.2: back at level 1 (fifth round)
        (130, "resolved", "hypo-level-1", "medium"),  # 4.5: every condition clear
    ]
    assert len({d.alert_id for _, d in got}) == 1
    first = got[0][1]
    assert first.predicted == pytest.approx(2.5) and first.horizon_minutes == 20
    assert first.value == 3.7 and first.trend == pytest.approx(-0.06)
    assert wire.decode(wire.encode(first)) == first
    text = alert_text(first, "Ana Novak", ZoneInfo("Europe/Ljubljana"), "4821")
    assert "PREDICTION" in text
    assert "predicted 2.5 mmol/L in 20 min, now 3.7 mmol/L, falling 0.1 mmol/L/min at 03:55" in text


def test_a_noisy_normal_week_predicts_nothing(tmp_path: Path) -> None:
    rng = random.Random(19)
    week = []
    for i in range(7 * 288):  # a reading every 5 minutes for a week
        meal = 2.0 * math.sin(math.pi * (i % 96) / 96)  # three meal bumps a day, back to 5.5
        week.append(round(5.5 + meal + rng.gauss(0, 0.25), 1))
    for predictor in ("linear", "ar2"):
        (tmp_path / predictor).mkdir()
        e = engine(tmp_path / predictor, config(_with(predictor)))
        assert story(e, week) == []


def test_now_below_keeps_the_forecast_for_values_near_a_low() -> None:
    falling = [6.4, 6.1, 5.8, 5.5, 5.2, 4.9, 4.6, 4.3, 4.0, 3.7]
    w = Window(_stream(falling))
    assert evaluate(_rule(predictor="linear", confirm_readings=2), w)[1]
    assert evaluate(_rule(predictor="linear", confirm_readings=2, now_below=4.1), w)[1]
    # Confirmed needs the reading before (4.0) under the cap as well.
    assert not evaluate(_rule(predictor="linear", confirm_readings=2, now_below=4.0), w)[1]


def test_the_shipped_rule_opens_the_glucose_low_episode() -> None:
    shipped = next(r for r in GLUCOSE if r["kind"] == "predicted")
    rule = PredictedRuleConfig.model_validate(shipped)
    assert rule.episode == "glucose-low" and rule.opens_episode and rule.below == 3.0
    assert 20 <= rule.horizon_minutes <= 30
