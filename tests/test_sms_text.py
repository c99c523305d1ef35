"""The SMS a doctor reads at 3 a.m. (issue 14): exact texts per kind, values as the device shows
them, the patient's glucose unit, the trend, the repeated hour at the end of summer time, and one
SMS segment for every shipped rule's first SMS, counted by the GSM-7 / UCS-2 segment rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from homevitals.alerts.segments import SmsLength, sms_length, to_gsm7
from homevitals.alerts.text import (
    ack_text,
    alert_text,
    digest_line,
    digest_text,
    display_name,
    escalation_text,
    format_value,
    local_time,
    reminder_text,
)
from homevitals.vocab.readings import AlertDecision

ROOT = Path(__file__).resolve().parent.parent
LJUBLJANA, BERLIN = ZoneInfo("Europe/Ljubljana"), ZoneInfo("Europe/Berlin")
NIGHT = datetime(2026, 11, 21, 3, 40, tzinfo=LJUBLJANA)


def decision(t: datetime = NIGHT, **kw: Any) -> AlertDecision:
    base: dict[str, Any] = {
        "alert_id": "a" * 32, "state": "firing", "home": "home-novak", "patient": "ana",
        "rule": "r", "severity": "high", "reason": "x", "time": t, "observed_at": t,
    }
    return AlertDecision(**{**base, **kw})


LEVEL_2 = decision(
    rule="hypo-level-2", measurement="glucose", field="glucose", value=2.775, unit="mmol/L",
    reason="Clinically significant low glucose, level 2 (below 3.0 mmol/L)", trend=-0.1,
)
LEVEL_1 = decision(
    rule="hypo-level-1", severity="medium", measurement="glucose", field="glucose", value=3.608,
    unit="mmol/L", reason="Low glucose, level 1 (below 3.9 mmol/L)", trend=-0.05,
)


def test_call_button() -> None:
    d = decision(
        datetime(2026, 11, 21, 3, 12, tzinfo=LJUBLJANA), rule="call-button", severity="critical",
        measurement="event", field="call_button", reason="Call for help from home",
    )
    assert alert_text(d, "Ana Novak", LJUBLJANA, "4821") == (
        "homevitals CRITICAL: Ana Novak pressed the call button at 03:12. Call for help from"
        " home. Reply ACK 4821"
    )


def test_night_low_in_mmol_with_the_cgm_trend() -> None:
    # The "2.775 mmol/L": a CGM shows 2.8.
    text = alert_text(LEVEL_2, "Ana Novak", LJUBLJANA, "4821")
    assert text == (
        "homevitals HIGH: Ana Novak: glucose 2.8 mmol/L, falling 0.1 mmol/L/min at 03:40."
        " Clinically significant low glucose, level 2 (below 3.0 mmol/L). Reply ACK 4821"
    )
    assert sms_length(text) == SmsLength("GSM-7", len(text), 1) and len(text) == 159


def test_low_in_mg_per_dl_converts_value_trend_and_threshold() -> None:
    # 3.608 mmol/L x 18.0156 = 65.0 mg/dL; -0.05 mmol/L/min = -0.9 mg/dL/min; 3.9 -> 70.
    assert alert_text(LEVEL_1, "Ana Novak", LJUBLJANA, "4821", glucose_unit="mg/dL") == (
        "homevitals MEDIUM: Ana Novak: glucose 65 mg/dL, falling 1 mg/dL/min at 03:40."
        " Low glucose, level 1 (below 70 mg/dL). Reply ACK 4821"
    )
    assert alert_text(LEVEL_2, "Ana Novak", LJUBLJANA, "4821", glucose_unit="mg/dL") == (
        "homevitals HIGH: Ana Novak: glucose 50 mg/dL, falling 2 mg/dL/min at 03:40."
        " Clinically significant low glucose, level 2 (below 54 mg/dL). Reply ACK 4821"
    )


def test_blood_pressure_with_a_device_flag_fits_one_segment() -> None:
    d = decision(
        rule="hypertensive-crisis-systolic", measurement="blood_pressure", field="systolic",
        value=198.0, unit="mmHg", flags=("body_movement",),
        reason="Hypertensive crisis (systolic 180 mmHg or more, confirmed by a second reading)",
    )
    # In full it would be 185 characters: the parenthetical threshold goes, the flag stays.
    assert alert_text(d, "Ana Novak", LJUBLJANA, "4821") == (
        "homevitals HIGH: Ana Novak: systolic 198 mmHg at 03:40. Hypertensive crisis."
        " Device flags: body movement. Reply ACK 4821"
    )


def test_the_repeated_hour_names_its_zone() -> None:
    # 25 Oct 2026, Europe/Berlin: 03:00 CEST becomes 02:00 CET, so 02:05 happens twice.
    texts = [
        alert_text(
            decision(
                datetime(2026, 10, 25, hour, 5, tzinfo=UTC), rule="hypo-level-1",
                severity="medium", measurement="glucose", field="glucose", value=3.5,
                unit="mmol/L", reason="Low glucose, level 1 (below 3.9 mmol/L)",
            ),
            "Jonas Weber", BERLIN, "1234",
        )
        for hour in (0, 1)
    ]
    assert texts == [
        "homevitals MEDIUM: Jonas Weber: glucose 3.5 mmol/L at 02:05 CEST. Low glucose,"
        " level 1 (below 3.9 mmol/L). Reply ACK 1234",
        "homevitals MEDIUM: Jonas Weber: glucose 3.5 mmol/L at 02:05 CET. Low glucose,"
        " level 1 (below 3.9 mmol/L). Reply ACK 1234",
    ]
    # An hour that happens once carries no zone; a zone without letters gets its offset
    # (America/Santiago, 5 Apr 2026: 23:30 happens at -03:00 and again at -04:00).
    assert local_time(datetime(2026, 10, 25, 2, 5, tzinfo=UTC), BERLIN) == "03:05"
    santiago = ZoneInfo("America/Santiago")
    assert [local_time(datetime(2026, 4, 5, h, 30, tzinfo=UTC), santiago) for h in (2, 3)] == [
        "23:30 -03:00", "23:30 -04:00",
    ]
    # A time 12 hours or more from the decision carries its date.
    assert local_time(NIGHT - timedelta(days=3), LJUBLJANA, NIGHT) == "18 Nov 03:40"


def test_follow_up_texts() -> None:
    resolved = decision(
        NIGHT + timedelta(hours=4), state="resolved", rule="hypo-level-2",
        measurement="glucose", field="glucose", value=5.84, unit="mmol/L",
        reason="Clinically significant low glucose, level 2 (below 3.0 mmol/L): back in range",
    )
    assert alert_text(resolved, "Ana Novak", LJUBLJANA, "4821") == (
        "homevitals ALL CLEAR: Ana Novak: glucose 5.8 mmol/L at 07:40. Clinically significant"
        " low glucose, level 2 (below 3.0 mmol/L): back in range. (alert ACK 4821)"
    )
    assert escalation_text(LEVEL_2, "Ana Novak", LJUBLJANA, "4821", ["Dr. Marko Kranjc"]) == (
        "ESCALATED, not acknowledged by Dr. Marko Kranjc. homevitals HIGH: Ana Novak: glucose"
        " 2.8 mmol/L, falling 0.1 mmol/L/min at 03:40. Clinically significant low glucose,"
        " level 2 (below 3.0 mmol/L). Reply ACK 4821"
    )
    assert reminder_text(LEVEL_2, "Ana Novak", LJUBLJANA, "4821", 2, glucose_unit="mg/dL") == (
        "REMINDER 2, still not acknowledged. homevitals HIGH: Ana Novak: glucose 50 mg/dL,"
        " falling 2 mg/dL/min at 03:40. Clinically significant low glucose, level 2"
        " (below 54 mg/dL). Reply ACK 4821"
    )
    by = "Dr. Nina Zupan (backup_doctor, +15550100002)"
    assert ack_text(LEVEL_2, "Ana Novak", LJUBLJANA, "4821", by, NIGHT + timedelta(minutes=4)) == (
        "homevitals: Dr. Nina Zupan (backup_doctor, +15550100002) acknowledged the HIGH alert"
        " about Ana Novak (ACK 4821) at 03:44. No action needed from you."
    )


def test_digest_lists_what_was_held_back() -> None:
    lines = [
        digest_line(LEVEL_1, "firing", "4821", NIGHT, LJUBLJANA),
        digest_line(LEVEL_1, "reminder-1", "4821", NIGHT + timedelta(minutes=30), LJUBLJANA),
        digest_line(LEVEL_2, "resolved", "5930", NIGHT + timedelta(minutes=50), LJUBLJANA),
    ]
    assert digest_text("Ana Novak", lines, 4) == (
        "homevitals DIGEST for Ana Novak: 3 SMS held back (4 per hour): 03:40 MEDIUM glucose"
        " 3.6 mmol/L ACK 4821; 04:10 reminder MEDIUM glucose 3.6 mmol/L ACK 4821; 04:30 all"
        " clear glucose 2.8 mmol/L (ACK 5930)."
    )
    many = digest_text("Ana Novak", lines * 10, 4)  # as many as fit in 3 segments
    assert many.endswith("; 23 more in the audit trail.") and many.count("ACK") == 7, many
    assert sms_length(many) == SmsLength("GSM-7", len(many), 3)


@pytest.mark.parametrize(
    ("field", "value", "unit", "glucose_unit", "shown"),
    [
        ("glucose", 3.25, "mmol/L", "mmol/L", "glucose 3.3 mmol/L"),  # half up, as meters do
        ("glucose", 3.25, "mmol/L", "mg/dL", "glucose 59 mg/dL"),
        ("systolic", 179.6, "mmHg", "mmol/L", "systolic 180 mmHg"),
        ("spo2", 88.4, "%", "mmol/L", "SpO2 88%"),
        ("temperature", 38.35, "°C", "mmol/L", "temperature 38.4 C"),  # "°" is not GSM-7
        ("heart_rate", 38.0, "bpm", "mmol/L", "heart rate 38 bpm"),
        ("weight", 81.26, "kg", "mmol/L", "weight 81.3 kg"),
        ("glucose", -0.01, "mmol/L", "mmol/L", "glucose 0.0 mmol/L"),  # never "-0.0"
    ],
)
def test_values_at_device_precision(
    field: str, value: float, unit: str, glucose_unit: str, shown: str
) -> None:
    assert format_value(field, value, unit, glucose_unit) == shown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SmsLength("GSM-7", 0, 1)),
        ("a" * 160, SmsLength("GSM-7", 160, 1)),
        ("a" * 161, SmsLength("GSM-7", 161, 2)),
        ("a" * 306, SmsLength("GSM-7", 306, 2)),
        ("a" * 307, SmsLength("GSM-7", 307, 3)),
        ("€" * 80, SmsLength("GSM-7", 160, 1)),  # extension table: 2 septets each
        ("[" * 81, SmsLength("GSM-7", 162, 2)),
        # 306 septets would be 2 segments, but the ESC pair cannot straddle the boundary.
        ("a" * 152 + "€" + "a" * 152, SmsLength("GSM-7", 306, 3)),
        ("é ü ñ Ä Ø ß £ ¥", SmsLength("GSM-7", 15, 1)),  # in the default alphabet
        ("č" * 70, SmsLength("UCS-2", 70, 1)),
        ("č" * 71, SmsLength("UCS-2", 71, 2)),
        ("č" * 134, SmsLength("UCS-2", 134, 2)),
        ("č" * 135, SmsLength("UCS-2", 135, 3)),
        ("38.4°C", SmsLength("UCS-2", 6, 1)),
        ("低血糖 2.8 mmol/L", SmsLength("UCS-2", 14, 1)),
        ("\U0001f600" * 35, SmsLength("UCS-2", 70, 1)),  # a surrogate pair is 2 units
        # 134 units would be 2 segments, but a surrogate pair cannot be split.
        ("a" * 66 + "\U0001f600" + "a" * 66, SmsLength("UCS-2", 134, 3)),
    ],
)
def test_segment_counter(text: str, expected: SmsLength) -> None:
    assert sms_length(text) == expected


def test_accents_come_off_only_when_gsm_has_no_such_letter() -> None:
    assert to_gsm7("Marija Kovačič-Žagar, Renée Müller") == "Marija Kovacic-Zagar, Renée Müller"
    assert to_gsm7("低血糖") is None and to_gsm7("38.4°C") is None


def _shipped_first_sms(rule: dict[str, Any], t: datetime) -> AlertDecision:
    """A realistic first decision for a shipped rule: a value beyond its threshold."""
    kind, kw = rule["kind"], {}
    m, f, unit = rule.get("measurement", ""), rule.get("field", ""), rule.get("unit", "")
    if kind == "threshold":
        value = rule["below"] * 0.8 if "below" in rule else rule["above"] * 1.1
        kw = {"value": value, "flags": ("body_movement",) if m == "blood_pressure" else ()}
    elif kind == "rate":
        kw = {"value": 4.2, "trend": -0.12}
    elif kind == "battery":
        m, f, kw, unit = "battery", "battery", {"value": 12.0}, "%"
    elif kind == "event":
        f = "call_button"
    return decision(t, rule=rule["id"], severity=rule["severity"], reason=rule["reason"],
                    measurement="gateway" if kind == "gateway" else m, field=f, unit=unit, **kw)


@pytest.mark.parametrize(
    ("name", "privacy"),
    [
        ("Aleksandra Novak-Kowalczyk", "full_name"),
        ("Marija Kovačič-Žagar", "full_name"),  # accents off: one GSM-7 segment, not three UCS-2
        ("Aleksandra Maria Novak-Kowalczyk", "initials"),
    ],
)
@pytest.mark.parametrize("glucose_unit", ["mmol/L", "mg/dL"])
def test_every_shipped_rule_first_sms_is_one_segment(
    name: str, privacy: str, glucose_unit: str
) -> None:
    rules = yaml.safe_load((ROOT / "configs/rules-defaults.yaml").read_text())["definitions"]
    shown = display_name(name, "ana", "104217", privacy)
    # The longest case: the repeated hour ("02:05 CEST") and a 6-digit ACK code.
    t = datetime(2026, 10, 25, 0, 5, tzinfo=UTC)
    for rule in rules:
        text = alert_text(_shipped_first_sms(rule, t), shown, BERLIN, "482193",
                          glucose_unit=glucose_unit)
        assert sms_length(text).segments == 1, (rule["id"], sms_length(text), text)
        assert text.endswith(" Reply ACK 482193") and "02:05 CEST" in text, text
        assert to_gsm7(shown) in text, text
