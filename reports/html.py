"""The report page: plain HTML, every value passed through ``html.escape``.

Each section says what it shows, with units and targets, and says plainly what could not be
computed and why, so an absent number is never mistaken for a normal one.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from homevitals.reports.bp_metrics import BpStats, BpSummary, VitalStats
from homevitals.reports.data import Period
from homevitals.reports.metrics import Gap, GlucoseMetrics
from homevitals.reports.targets import STANDARD, GlucoseTargets, missed

__all__ = ["FLAG_MARK", "MISS_MARK", "Page", "render", "write_page"]

FLAG_MARK = "\u2691 flagged"  # a flag symbol and the word, so it survives printing in greyscale
MISS_MARK = "\u2717 target missed"  # likewise for a value that misses its target
# The print stylesheet keeps the glucose section (metrics, AGP, daily traces) on one A4 page, as
# the AGP report does: figures are capped in height, a heading never ends a page (break-after:
# avoid) and each later section starts a new page.
_CSS = """body{font-family:sans-serif;max-width:1250px;margin:1em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 8px}
th{background:#eee;text-align:left}.flagged{background:#fde0e0}.note{color:#8a4b00}
.miss{background:#fde0e0;font-weight:bold}img{max-width:100%;border:1px solid #ddd}
@page{size:A4;margin:10mm}
@media print{body{max-width:none;margin:0;font-size:8pt}td,th{padding:0 4px}
h1{font-size:12pt;margin:0 0 2pt}h2{font-size:11pt;margin:4pt 0 2pt}h3{font-size:9pt;margin:3pt 0}
h1,h2,h3{break-after:avoid;page-break-after:avoid}table,figure,img,p{break-inside:avoid}
section{break-before:page}section.glucose{break-before:auto;break-after:page}
section.glucose img{max-height:62mm;width:auto}section.glucose table{margin:2pt 0}
.miss{outline:1px solid #000}}"""


@dataclass(frozen=True, slots=True)
class Page:
    patient_id: str
    patient_name: str
    home_id: str
    period: Period
    generated: datetime
    glucose: GlucoseMetrics
    agp_image: str | None  # file name beside the page, or None with agp_reason
    agp_reason: str
    daily_image: str | None
    bp: BpSummary | None
    bp_rows: pd.DataFrame  # as bp_metrics.prepare_bp returns it
    bp_gaps: tuple[Gap, ...]
    bp_image: str | None
    heart_rate: VitalStats | None
    spo2: VitalStats | None
    vitals_image: str | None
    alerts: pd.DataFrame | None  # None: no alert ledger
    alerts_path: str
    targets: GlucoseTargets = STANDARD

    def __post_init__(self) -> None:
        if self.agp_image is None and not self.agp_reason:
            raise ValueError("a page without an AGP must say why")


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "not available" if value is None else f"{value:.{digits}f}{' ' + unit if unit else ''}"


def _table(
    head: Sequence[str], rows: Iterable[Sequence[object]], classes: Sequence[str] = ()
) -> str:
    out = ["<table><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr>"]
    for i, row in enumerate(rows):
        cls = f' class="{_e(classes[i])}"' if i < len(classes) and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    return "".join(out) + "</table>"


def _img(name: str | None, alt: str) -> str:
    return "" if name is None else f'<p><img src="{_e(name)}" alt="{_e(alt)}"></p>'


def _notes(lines: Iterable[str]) -> str:
    return "".join(f'<p class="note">{_e(line)}</p>' for line in lines)


def _local(t: object, p: Period) -> str:
    return pd.Timestamp(t).tz_convert(p.zone).strftime("%Y-%m-%d %H:%M") if pd.notna(t) else ""


def _gaps(gaps: Sequence[Gap], p: Period, what: str) -> str:
    if not gaps:
        return f"<p>No gaps in the {_e(what)}.</p>"
    rows = [(_local(g.start, p), _local(g.end, p),
             f"{(g.end - g.start).total_seconds() / 3600:.1f} h") for g in gaps]
    return f"<p>Gaps in the {_e(what)} (local time):</p>" + _table(("from", "to", "length"), rows)


def _target(metric: str, page: Page, fallback: str = "") -> str:
    t = page.targets.of(metric)
    return fallback if t is None else t.text


def _glucose(page: Page) -> str:
    m = page.glucose
    cv_note = "" if m.cv_reliable else " (unreliable: too few readings)"
    missing = missed(m, page.targets)
    ranged = [
        ("cv_percent", "Coefficient of variation (SD / mean)", _num(m.cv_percent, "%") + cv_note),
        ("in_range", "In range 3.9-10.0 mmol/L", _num(m.in_range, "%")),
        ("below_3_9", "Below 3.9 mmol/L (includes below 3.0)", _num(m.below_3_9, "%")),
        ("below_3_0", "Below 3.0 mmol/L", _num(m.below_3_0, "%")),
        ("above_10_0", "Above 10.0 mmol/L (includes above 13.9)", _num(m.above_10_0, "%")),
        ("above_13_9", "Above 13.9 mmol/L", _num(m.above_13_9, "%")),
    ]
    rows: list[tuple[object, ...]] = [
        ("Readings used", m.readings, "CGM" if m.cgm else "glucose meter"),
        ("Duplicate readings removed (same time, same device)", m.duplicates, ""),
        ("Mean glucose", f"{_num(m.mean_mmol, 'mmol/L')} ({_num(m.mean_mgdl, 'mg/dL', 0)})", ""),
        ("GMI", _num(m.gmi_percent, "%"), "estimate of HbA1c from CGM mean"),
        ("Standard deviation", _num(m.sd_mmol, "mmol/L", 2), "")]
    classes = [""] * len(rows)
    for key, label, value in ranged:
        miss = key in missing
        rows.append((label, f"{value} {MISS_MARK}" if miss else value,
                     _target(key, page, "no separate target")))
        classes.append("miss" if miss else "")
    rows.append(("Coverage (readings present / expected every 5 min)",
                 _num(m.coverage_percent, "%"), "target >= 70 % of 14 days"))
    agp = _img(page.agp_image, "ambulatory glucose profile") if page.agp_image else \
        _notes([page.agp_reason])
    return ('<section class="glucose"><h2>Glucose</h2>'
            f"<p>Targets: {_e(page.targets.label)} (Battelino 2019).</p>"
            + _table(("metric", "value", "note / consensus target"), rows, classes)
            + _notes(m.caveats) + "<h3>Ambulatory glucose profile (AGP)</h3>" + agp
            + "<h3>Daily glucose</h3>" + _img(page.daily_image, "daily glucose traces")
            + _gaps(m.gaps, page.period, "glucose readings") + "</section>")


def _bp_stats_rows(stats: Sequence[BpStats], which: str) -> list[tuple[object, ...]]:
    return [(which, s.label, s.readings, _num(s.systolic, "mmHg"), _num(s.diastolic, "mmHg"),
             _num(s.high_percent, "%"), {True: "yes", False: "no", None: ""}[s.mean_is_high])
            for s in stats]


def _bp(page: Page) -> str:
    if page.bp is None:
        return ('<section class="bp"><h2>Blood pressure</h2><p>No blood pressure readings in the'
                " period.</p></section>")
    s = page.bp
    head = ("readings", "session", "n", "mean systolic", "mean diastolic",
            "share >= 135/85", "mean >= 135/85")
    rows = (_bp_stats_rows(s.all_readings, "all counted")
            + _bp_stats_rows(s.unflagged, "excluding flagged"))
    classes = ["miss" if st.mean_is_high else "" for st in (*s.all_readings, *s.unflagged)]
    diff = [("all counted readings", _num(s.difference_all, "mmHg")),
            ("excluding flagged", _num(s.difference_unflagged, "mmHg"))]
    return ('<section class="bp"><h2>Blood pressure</h2>'
            "<p>Home blood pressure by the ESH protocol (Parati 2021): the first day's readings"
            f" ({s.first_day_dropped}) are discarded, and only morning (06:00-11:59) and evening"
            f" (18:00-23:59) readings are counted ({s.outside_windows} at other times are not)."
            f" {s.flagged} of {len(page.bp_rows)} readings were flagged by the device (marked"
            f" {_e(FLAG_MARK)});"
            f" {s.duplicates} duplicates removed. Home BP >= 135/85 mmHg is high (ESC/ESH 2018,"
            " ISH 2020).</p>" + _notes(s.caveats) + _table(head, rows, classes)
            + _table(("morning minus evening mean systolic", "value"), diff)
            + _img(page.bp_image, "blood pressure readings") + _bp_readings(page)
            + _gaps(page.bp_gaps, page.period, "blood pressure readings (whole days)")
            + "</section>")


def _counted(r: Any, first: object) -> str:
    if r.local.date() == first:
        return "no: first day"
    return "no: outside the windows" if r.session == "other" else "yes"


def _bp_readings(page: Page) -> str:
    df = page.bp_rows
    first = df["local"].min().date() if len(df) else None
    rows = [(r.local.strftime("%Y-%m-%d %H:%M"), r.session, _counted(r, first),
             _num(r.systolic, "", 0), _num(r.diastolic, "", 0), _num(r.pulse, "", 0),
             f"{FLAG_MARK}: {r.flags}" if r.flagged else "", r.device) for r in df.itertuples()]
    classes = ["flagged" if f else "" for f in df["flagged"]]
    head = ("local time", "session", "counted", "systolic mmHg", "diastolic mmHg", "pulse bpm",
            "device flags", "device")
    return "<h3>Readings</h3>" + _table(head, rows, classes)


def _vitals(page: Page) -> str:
    out = ['<section class="vitals"><h2>Heart rate and SpO2</h2>']
    for name, unit, stats in (("heart_rate", "bpm", page.heart_rate), ("spo2", "%", page.spo2)):
        if stats is None:
            out.append(f"<p>No {_e(name)} measurements in the store for this period: no trend"
                       " can be shown.</p>")
        else:
            out.append(f"<p>{_e(name)}: {stats.readings} readings, mean {_num(stats.mean, unit)},"
                       f" range {_num(stats.low, unit)} to {_num(stats.high, unit)}.</p>")
    return "".join(out) + _img(page.vitals_image, "heart rate and SpO2 trends") + "</section>"


def _value(r: Any) -> str:
    v = r.get("value")
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return f"{float(v):g} {r.get('unit') or ''}".strip()


def _alerts(page: Page) -> str:
    head_ = '<section class="alerts"><h2>Alerts</h2>'
    if page.alerts is None:
        return (f"{head_}<p>No alert ledger at {_e(page.alerts_path)}: alerts of the period"
                " cannot be listed.</p></section>")
    if page.alerts.empty:
        return f"{head_}<p>No alerts for readings in the period.</p></section>"
    acked = "acked_at" in page.alerts  # ledgers written before acknowledgements existed lack it
    rows = [(_local(r["reading_at"], page.period), _value(r), r["rule"], r["severity"],
             _local(r["opened_at"], page.period), r["alert_state"],
             _local(r.get("resolved_at"), page.period), r.get("kind") or "",
             f"{r.get('name') or '-'} ({r.get('role') or '-'})", r.get("sms_state") or "",
             _local(r.get("sent_at"), page.period),
             _acked(r, page) if acked else "not recorded")
            for _, r in page.alerts.iterrows()]
    head = ("reading time", "value", "rule", "severity", "opened", "state", "resolved",
            "message", "notified", "SMS", "sent", "acknowledged")
    note = "" if acked else _notes(["This alert ledger does not record acknowledgements."])
    return (f"{head_}<p>Alerts are placed by the time of the reading that raised them, which may"
            " be before the alert opened (readings sent late).</p>" + _table(head, rows) + note
            + "</section>")


def _acked(r: Any, page: Page) -> str:
    at = r.get("acked_at")
    if at is None or (isinstance(at, float) and at != at):  # NaN from pandas for "never"
        return "not acknowledged"
    return f"{_local(at, page.period)} by {r.get('acked_by') or '?'}"


def render(page: Page) -> str:
    p = page.period
    title = f"{page.patient_name} ({page.patient_id}), {p.first} to {p.last}"
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}"
            f"</title><style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"
            f"<p>Home {_e(page.home_id)}, time zone {_e(p.zone.key)}; {p.days} days, local dates"
            f" inclusive. Generated {_e(page.generated.strftime('%Y-%m-%d %H:%M %Z'))}.</p>"
            + _glucose(page) + _bp(page) + _vitals(page) + _alerts(page) + _SOURCES
            + "</body></html>\n")


_SOURCES = """<section class="sources"><h2>Definitions and sources</h2><ul>
<li>Glucose ranges, targets, CV and coverage: Battelino T et al., International Consensus on Time
in Range, Diabetes Care 2019;42:1593-1603. Range shares are shares of readings.</li>
<li>GMI (%) = 3.31 + 0.02392 x mean glucose (mg/dL); mg/dL = mmol/L x 18.0156: Bergenstal RM et
al., Diabetes Care 2018;41:2275-2280.</li>
<li>Home BP high at >= 135 systolic or >= 85 mmHg diastolic: 2018 ESC/ESH guidelines (Eur Heart J
2018;39:3021-3104) and ISH 2020 (Hypertension 2020;75:1334-1357).</li>
<li>Home BP protocol: ESH 2021 home BP position paper (Parati G et al., J Hypertens
2021;39:1742-1767): first day discarded, morning and evening readings only (clock windows
06:00-11:59 and 18:00-23:59 stand in for "before breakfast" and "before dinner"), at least 3
days and 12 readings. The morning minus evening difference is shown as such; it is not the
morning surge, which needs the night's lowest pressure.</li>
<li>Targets for older or high-risk people (in range &gt; 50 %, below 3.9 &lt; 1 %, above 13.9
&lt; 10 %): Battelino 2019, chosen per patient in the configuration.</li>
<li>Readings the device flagged (body movement, irregular pulse, cuff too loose, improper
position) are marked and summarised both with and without them.</li></ul></section>"""


def write_page(page: Page, path: Path) -> Path:
    path.write_text(render(page), encoding="utf-8")
    return path
