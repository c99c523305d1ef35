"""PNG figures of a report, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Every figure has a fixed pixel size (``SIZES``), so a page lays out the same for every patient.
Device-flagged readings are always drawn with their own marker, never like the others.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from homevitals.reports.bp_metrics import HIGH_DIASTOLIC, HIGH_SYSTOLIC
from homevitals.reports.data import Period
from homevitals.reports.metrics import AGP_PERCENTILES, CGM_GAP, Agp, GlucoseMetrics

__all__ = ["DPI", "SIZES", "agp_figure", "bp_figure", "daily_figure", "vitals_figure"]

DPI = 100
SIZES = {"agp": (1200, 500), "bp": (1200, 500), "vitals": (1200, 420)}  # pixels (width, height)
DAY_ROW_PIXELS = 170  # daily traces: 7 days per row
DAYS_PER_ROW = 7
LOW, HIGH = 3.9, 10.0  # mmol/L, the consensus target range (Battelino 2019)
FLAGGED_COLOUR = "#d62728"  # a red X: no other series uses that marker


def _figure(width: int, height: int) -> Figure:
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, format="png")  # no bbox_inches="tight": it would change the size
    return path


def agp_figure(profile: Agp, m: GlucoseMetrics, path: Path) -> Path:
    fig = _figure(*SIZES["agp"])
    ax = fig.add_axes((0.06, 0.12, 0.64, 0.78))
    hours = np.asarray(profile.minutes, dtype=float) / 60.0
    p5, p25, p50, p75, p95 = (np.asarray(c) for c in profile.curves)
    ax.axhspan(LOW, HIGH, color="#2ca02c", alpha=0.08, label="target 3.9-10.0 mmol/L")
    ax.fill_between(hours, p5, p95, color="#1f77b4", alpha=0.18, label="5-95 %")
    ax.fill_between(hours, p25, p75, color="#1f77b4", alpha=0.40, label="25-75 %")
    ax.plot(hours, p50, color="#0b3d91", linewidth=2.2, label="median")
    ax.plot(hours, p5, color="#1f77b4", linewidth=0.8, linestyle="--")
    ax.plot(hours, p95, color="#1f77b4", linewidth=0.8, linestyle="--")
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 3), [f"{h:02d}:00" for h in range(0, 25, 3)])
    ax.set_ylim(0, max(16.0, float(np.nanmax(p95)) + 1.0))
    ax.set_ylabel("glucose (mmol/L)")
    ax.set_title(f"Ambulatory glucose profile: percentiles {', '.join(map(str, AGP_PERCENTILES))}"
                 " % by local time of day")
    ax.legend(loc="upper left", fontsize=8, ncol=4)
    ax.grid(alpha=0.3)
    _range_bar(fig.add_axes((0.74, 0.12, 0.04, 0.78)), m)
    return _save(fig, path)


def _range_bar(ax: Axes, m: GlucoseMetrics) -> None:
    """The consensus stacked bar (% of readings), labelled in a fixed column: small shares such
    as 0.4 % below 3.0 would otherwise print on top of each other."""
    assert m.below_3_0 is not None and m.below_3_9 is not None and m.in_range is not None
    assert m.above_10_0 is not None and m.above_13_9 is not None
    parts = [
        ("< 3.0", m.below_3_0, "#8b0000"), ("3.0-3.8", m.below_3_9 - m.below_3_0, "#d62728"),
        ("3.9-10.0", m.in_range, "#2ca02c"), ("10.1-13.9", m.above_10_0 - m.above_13_9, "#ffbf00"),
        ("> 13.9", m.above_13_9, "#ff7f0e"),
    ]
    bottom = 0.0
    for i, (label, share, colour) in enumerate(parts):
        ax.bar(0, share, bottom=bottom, color=colour, width=1.0)
        ax.text(1.3, 0.1 + 0.2 * i, f"{label} mmol/L: {share:.1f} %", va="center", fontsize=9,
                color=colour if colour != "#ffbf00" else "#9a7400", transform=ax.transAxes,
                fontweight="bold" if label == "3.9-10.0" else "normal")
        bottom += share
    ax.set_xlim(-0.5, 0.5)
    ax.set_ylim(0, 100)
    ax.set_xticks([])
    ax.set_title("% of readings", fontsize=9)


def _local_hours(times: pd.Series, zone: object) -> np.ndarray:
    local = pd.DatetimeIndex(times).tz_convert(zone)
    return np.asarray(local.hour + local.minute / 60.0 + local.second / 3600.0, dtype=float)


def daily_figure(glucose: pd.DataFrame, cgm: set[str], period: Period, path: Path) -> Path:
    """One small panel per local day; CGM as lines, meter readings as dots."""
    rows = math.ceil(period.days / DAYS_PER_ROW)
    fig = _figure(SIZES["agp"][0], DAY_ROW_PIXELS * rows + 40)
    axes = fig.subplots(rows, DAYS_PER_ROW, sharey=True, squeeze=False)
    local_days = pd.DatetimeIndex(glucose["time"]).tz_convert(period.zone).date
    top = max(16.0, float(glucose["glucose"].max()) + 1.0) if len(glucose) else 16.0
    for i, ax in enumerate(axes.flat):
        day = period.first + timedelta(days=i)
        if i >= period.days:
            ax.set_visible(False)
            continue
        _day_panel(ax, glucose[local_days == day], cgm, period, top)
        ax.set_title(day.strftime("%a %d %b"), fontsize=8)
    axes[0][0].set_ylabel("mmol/L", fontsize=8)
    fig.subplots_adjust(left=0.04, right=0.99, top=1 - 30 / (DAY_ROW_PIXELS * rows + 40),
                        bottom=0.12 / rows, wspace=0.08, hspace=0.45)
    return _save(fig, path)


def _day_panel(ax: Axes, day: pd.DataFrame, cgm: set[str], period: Period, top: float) -> None:
    ax.axhspan(LOW, HIGH, color="#2ca02c", alpha=0.1)
    for device, rows in day.groupby("device"):
        x = _local_hours(rows["time"], period.zone)
        y = rows["glucose"].to_numpy(dtype=float)
        if device in cgm:  # a NaN after each gap breaks the line: no reading is invented
            gap = np.diff(rows["time"].to_numpy()) > np.timedelta64(CGM_GAP)
            ax.plot(np.insert(x, np.flatnonzero(gap) + 1, np.nan),
                    np.insert(y, np.flatnonzero(gap) + 1, np.nan), color="#0b3d91", linewidth=0.8)
        else:
            ax.plot(x, y, "o", color="#0b3d91", markersize=3)
    if day.empty:
        ax.text(12, top / 2, "no data", ha="center", fontsize=8, color="grey")
    ax.set_xlim(0, 24)
    ax.set_ylim(0, top)
    ax.set_xticks([0, 12, 24], ["0", "12", "24"], fontsize=7)
    ax.tick_params(axis="y", labelsize=7)


def bp_figure(bp: pd.DataFrame, path: Path) -> Path:
    """``bp`` as ``bp_metrics.prepare_bp`` returns it (with session and flagged columns)."""
    fig = _figure(*SIZES["bp"])
    ax = fig.add_axes((0.06, 0.12, 0.78, 0.78))
    markers = {"morning": ("o", "#1f77b4"), "evening": ("s", "#9467bd"), "other": ("^", "grey")}
    for session, (marker, colour) in markers.items():
        ok = bp[(bp["session"] == session) & ~bp["flagged"]]
        if not ok.empty:
            ax.scatter(ok["local"], ok["systolic"], marker=marker, color=colour,
                       label=f"{session} systolic")
            ax.scatter(ok["local"], ok["diastolic"], marker=marker, facecolors="none",
                       edgecolors=colour, label=f"{session} diastolic")
    flagged = bp[bp["flagged"]]
    if not flagged.empty:
        for column, label in (("systolic", "flagged by the device"), ("diastolic", None)):
            ax.scatter(flagged["local"], flagged[column], marker="X", color=FLAGGED_COLOUR, s=70,
                       zorder=4, label=label)
    ax.axhline(HIGH_SYSTOLIC, color="#d62728", linestyle="--", linewidth=1, label="135 mmHg")
    ax.axhline(HIGH_DIASTOLIC, color="#ff7f0e", linestyle="--", linewidth=1, label="85 mmHg")
    ax.set_ylabel("blood pressure (mmHg)")
    ax.set_title("Home blood pressure (filled: systolic, open: diastolic; X: flagged reading)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(fig, path)


def vitals_figure(hr: pd.DataFrame, spo2: pd.DataFrame, path: Path) -> Path:
    fig = _figure(*SIZES["vitals"])
    for i, (df, field, unit, colour) in enumerate(
            ((hr, "heart_rate", "bpm", "#d62728"), (spo2, "spo2", "%", "#1f77b4"))):
        ax = fig.add_subplot(1, 2, i + 1)
        if df.empty:
            ax.text(0.5, 0.5, f"no {field} readings", ha="center", transform=ax.transAxes)
        else:
            ax.plot(df["time"], df[field], ".-", color=colour, linewidth=0.6)
        ax.set_title(f"{field.replace('_', ' ')} ({unit})")
        ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(fig, path)
