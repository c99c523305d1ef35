"""Clinical episodes and silence by the receive clock (issue 14), through the rule engine's public
entry points with its real SQLite state and the shipped defaults (configs/rules-defaults.yaml).

Each test asserts the decisions that become SMS: one ``firing`` per episode, at most one
``updated`` per rise in severity, one ``resolved`` once every condition has cleared.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rules_helpers import CRISIS, DEFAULTS, GLUCOSE, ROOT, T0, arrive, cgm, config, engine, story

from homevitals.vocab import wire
from homevitals.vocab.errors import ConfigError
from homevitals.vocab.readings import AlertDecision, FieldValue, Reading
from homevitals.vocab.units import Unit

_ids = itertools.count(1)
FALL = [6.0, 5.6, 5.2, 4.8, 4.4, 4.0, 3.6, 3.2, 2.8]  # 6.0 -> 2.8 over 40 minutes


def test_a_cgm_low_is_one_episode_with_one_update_and_one_all_clear(tmp_path: Path) -> None:
    e = engine(tmp_path, config(GLUCOSE))
    got = story(e, [*FALL, 2.8, 2.8, 2.8, 3.2, 3.6, 4.0, 4.6, 5.0])
    assert [(m, str(d.state), d.rule, str(d.severity)) for m, d in got] == [
        (30, "firing", "hypo-level-1", "medium"),  # fast fall: no 15-minute wait
        (40, "updated", "hypo-level-2", "high"),
        # 3.2: back above level 2's 3.0 (its clear_at since the fifth round), level 1 holds:
        # the episode falls (the alerts stage sends no SMS for it and stops the doctor's steps)
        (60, "updated", "hypo-level-1", "medium"),
        (75, "resolved", "hypo-level-1", "medium"),  # 4.6: past level 1's clear_at 4.4
    ]
    assert len({d.alert_id for _, d in got}) == 1
    assert {d.episode for _, d in got} == {"glucose-low"}
    assert got[0][1].conditions == ("glucose-falling-fast", "hypo-level-1")
    assert got[1][1].conditions == ("glucose-falling-fast", "hypo-level-1", "hypo-level-2")
    assert got[1][1].value == 2.8 and got[3][1].conditions == ()
    assert got[2][1].conditions == ("hypo-level-1",) and got[2][1].value == 3.2
    # The trend for the SMS: the slope of the last 15 minutes (0.4 mmol/L per 5 minutes).
    assert got[0][1].trend == pytest.approx(-0.08) and got[1][1].trend == pytest.approx(-0.08)
    # The decisions cross MQTT; the new fields survive the wire.
    assert wire.decode(wire.encode(got[1][1])) == got[1][1]


def test_no_all_clear_while_the_episode_still_holds(tmp_path: Path) -> None:
    e = engine(tmp_path, config(GLUCOSE))
    got = story(e, [*FALL, *[2.8] * 8])  # the fall stops being fast; she is still at 2.8
    assert [str(d.state) for _, d in got] == ["firing", "updated"]
    assert e.open_alert("ana", "glucose-falling-fast") is None  # that condition cleared ...
    assert e.open_alert("ana", "hypo-level-2") is not None  # ... the low did not
    assert len(e.outbox) == 2


def test_level_2_on_the_first_reading_opens_the_episode_at_level_2(tmp_path: Path) -> None:
    e = engine(tmp_path, config(GLUCOSE))
    got = story(e, [6.5, 2.7, 2.6, 4.6])
    assert [(m, str(d.state), d.rule) for m, d in got] == [
        (5, "firing", "hypo-level-2"), (15, "resolved", "hypo-level-1")]


def test_level_2_on_a_cgm_needs_a_second_reading_unless_fast_or_urgent(tmp_path: Path) -> None:
    # Issue 14, fourth tuning round: one CGM reading below 3.0 on a slow drift is not level 2.
    e = engine(tmp_path, config(GLUCOSE))
    drift = [4.2, 3.8, 3.6, 3.4, 3.3, 3.2, 3.2, 2.9, 3.2, 3.3, 2.8, 2.7, 3.0, 4.5]
    got = story(e, drift)
    assert [(m, str(d.state), d.rule, str(d.severity)) for m, d in got] == [
        (20, "firing", "hypo-level-1", "medium"),  # 15 minutes below 3.9 on the CGM
        (55, "updated", "hypo-level-2", "high"),  # 2.8 then 2.7: not at 2.9 alone (35)
        (60, "updated", "hypo-level-1", "medium"),  # 3.0: not level 2 (fifth round: a fall)
        (65, "resolved", "hypo-level-1", "medium"),
    ]
    # One reading below 2.2 mmol/L (iCGM error below level 2) is level 2 at once.
    (tmp_path / "urgent").mkdir()
    e = engine(tmp_path / "urgent", config(GLUCOSE))
    got = story(e, [3.6, 3.5, 3.4, 3.3, 3.2, 3.1, 2.1])
    assert [(m, str(d.state), d.rule) for m, d in got] == [
        (15, "firing", "hypo-level-1"), (30, "updated", "hypo-level-2-urgent")]


def test_level_2_from_the_meter_is_never_confirmed(tmp_path: Path) -> None:
    e = engine(tmp_path, config(GLUCOSE))
    [d] = arrive(e, cgm(T0, 2.8, device="meter-1"))  # a finger-stick the person took on purpose
    assert (str(d.state), d.rule, str(d.severity)) == ("firing", "hypo-level-2", "high")
    # Fifth round: the meter's own level-2 condition, which tells the doctor at once (routes).
    assert "hypo-level-2-meter" in d.conditions
    assert e.open_alert("ana", "hypo-level-2-meter") is not None
    assert arrive(e, cgm(T0 + timedelta(minutes=5), 2.7)) == []  # the CGM agrees: no change
    assert e.open_alert("ana", "hypo-level-2-meter") is not None
    [up] = arrive(e, cgm(T0 + timedelta(minutes=10), 3.5))  # the CGM back above 3.0: level 1
    assert (str(up.state), str(up.severity)) == ("updated", "medium")
    assert e.open_alert("ana", "hypo-level-2-meter") is None


def test_a_cgm_reading_never_fires_the_meter_rule(tmp_path: Path) -> None:
    e = engine(tmp_path, config(GLUCOSE))
    story(e, [3.6, 3.5, 3.4, 3.3, 3.2, 3.1, 2.1, 2.0])
    assert e.open_alert("ana", "hypo-level-2-urgent") is not None
    assert e.open_alert("ana", "hypo-level-2-meter") is None


def test_fast_fall_alone_pages_nobody(tmp_path: Path) -> None:
    # After a meal bolus: 11.0 -> 6.0 in 30 minutes, never low.
    e = engine(tmp_path, config(GLUCOSE))
    assert story(e, [11.0, 10.0, 9.0, 8.0, 7.0, 6.5, 6.0, 6.0, 6.0, 6.1]) == []






def test_a_confirmed_crisis_is_one_alert(tmp_path: Path) -> None:
    e = engine(tmp_path, config(CRISIS))
    t = datetime(2026, 11, 21, 7, 10, tzinfo=UTC)

    def bp(minute: int, sys: float, dia: float) -> list[AlertDecision]:
        r = Reading(
            reading_id=f"bp{next(_ids)}", home="home-1", patient="ana", device="bp-1",
            measurement="blood_pressure",  # type: ignore[arg-type]
            fields={"systolic": FieldValue(sys, Unit.MMHG),
                    "diastolic": FieldValue(dia, Unit.MMHG)},
            time=t + timedelta(minutes=minute), received_at=t + timedelta(minutes=minute),
            flags=("body_movement",),
        )
        return arrive(e, r)

    assert bp(0, 198, 124) == []  # not confirmed yet
    [d] = bp(5, 196, 122)
    assert (str(d.state), d.episode, d.conditions) == (
        "firing", "hypertensive-crisis",
        ("hypertensive-crisis-diastolic", "hypertensive-crisis-systolic"))
    assert bp(30, 170, 105) == []  # systolic back below 160? no; diastolic not below 100
    assert bp(60, 165, 98) == []  # diastolic cleared, systolic still above its clear_at
    [clear] = bp(90, 150, 92)
    assert (str(clear.state), clear.alert_id) == ("resolved", d.alert_id)


def test_opens_episode_false_needs_a_rule_that_opens_it() -> None:
    [fall] = [r for r in GLUCOSE if r["id"] == "glucose-falling-fast"]
    with pytest.raises(ConfigError, match="opens_episode is false"):
        config([fall])
    with pytest.raises(ConfigError, match="sustain_waived_by names unknown rule 'nope'"):
        config([{**GLUCOSE[0], "sustain_waived_by": ["nope"]}])









def test_a_decision_from_before_episodes_still_decodes() -> None:
    old = (b'{"v":1,"type":"alert","alert_id":"a98616f5e50d87627515f4bee24729","state":"firing",'
           b'"home":"home-1","patient":"ana","rule":"night-low","severity":"high",'
           b'"reason":"Night-time low glucose","time":"2026-11-21T02:10:00.000000Z"}')
    d = wire.decode(old)
    assert isinstance(d, AlertDecision)
    assert (d.episode, d.conditions, d.state) == ("", (), "firing")


def test_shipped_defaults_group_the_episodes_and_name_their_sources() -> None:
    by_id = {r["id"]: r for r in DEFAULTS}
    assert {r["id"] for r in GLUCOSE} == {"hypo-level-1", "hypo-level-2", "glucose-falling-fast",
                                          "glucose-low-predicted",  # issue 19
                                          "hypo-level-2-urgent",  # issue 14, fourth round
                                          "hypo-level-2-meter"}  # issue 14, fifth round
    assert {r["id"] for r in CRISIS} == {"hypertensive-crisis-systolic",
                                         "hypertensive-crisis-diastolic"}
    assert by_id["glucose-falling-fast"]["opens_episode"] is False
    assert by_id["hypo-level-1"]["for_minutes"] == 15
    assert by_id["hypo-level-1"]["sustain_devices"] == ["cgm"]
    # Level 2 on a CGM: a second reading, never more (fourth round); no wait below 2.2 mmol/L,
    # on a fast fall or for a finger-stick.
    assert "for_minutes" not in by_id["hypo-level-2"]
    assert by_id["hypo-level-2"]["n_of_m"] == {"n": 2, "m": 2}
    assert by_id["hypo-level-2"]["sustain_devices"] == ["cgm"]
    assert by_id["hypo-level-2"]["sustain_waived_by"] == ["glucose-falling-fast"]
    assert by_id["hypo-level-2-urgent"]["below"] == 2.2
    assert "n_of_m" not in by_id["hypo-level-2-urgent"]
    # Fifth round: level 2 holds while below 3.0 (the doctor's steps stop above it).
    assert by_id["hypo-level-2"]["clear_at"] == by_id["hypo-level-2-urgent"]["clear_at"] == 3.0
    assert by_id["hypo-level-2-meter"]["fire_devices"] == ["glucose_meter"]
    text = (ROOT / "configs/rules-defaults.yaml").read_text()
    for source in ("International Consensus on Time in Range", "2019;42:1593-1603",
                   "21 CFR 862.1355",
                   "Danne et al., Diabetes Care 2017;40:1631", "ACC/AHA"):
        assert source in text


def test_an_urgent_low_joining_a_level_2_episode_is_announced_once(tmp_path: Path) -> None:
    """``announce_join`` (hypo-level-2-urgent): an update of the same severity, which the alerts
    stage may act on; it names the urgent reading."""
    e = engine(tmp_path, config(GLUCOSE))
    got = story(e, [5.0, 3.6, 2.9, 2.8, 2.5, 2.1, 2.0])
    ups = [(m, str(d.state), d.rule, str(d.severity), d.value) for m, d in got]
    assert ups[-1] == (25, "updated", "hypo-level-2-urgent", "high", 2.1), ups
    assert [u[2] for u in ups].count("hypo-level-2-urgent") == 1  # 2.0 after it: joined already
    assert len({d.alert_id for _, d in got}) == 1
