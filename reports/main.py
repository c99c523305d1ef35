"""The reports stage's one entry point: a period of one patient -> an HTML page with PNG figures.

Reports read what other stages wrote: the store (``homevitals.ingest``) and the alert ledger
(``homevitals.alerts``). They are passed in as ``ReadingSource`` and ``AlertHistory``; the
composition root (``homevitals.roots.cli``) builds them, since a stage never imports another stage.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TextIO

from homevitals.reports import figures
from homevitals.reports.bp_metrics import bp_summary, prepare_bp, vital_stats
from homevitals.reports.data import AlertHistory, PatientData, Period, ReadingSource, load
from homevitals.reports.errors import ReportError
from homevitals.reports.html import Page, write_page
from homevitals.reports.metrics import agp, cgm_devices, deduplicate, empty_days, glucose_metrics
from homevitals.reports.targets import TARGETS
from homevitals.vocab.config import Config, HomeConfig, PatientConfig, StoreConfig, StoreKind

__all__ = ["check_store", "parse_date", "report_name", "run_all", "run_report"]

logger = logging.getLogger(__name__)


def parse_date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ReportError(
            f"bad dates: {option} {text!r} is not a date such as 2026-11-20") from None


def report_name(patient: str, first: date, last: date) -> str:
    return f"{patient}-{first.isoformat()}-{last.isoformat()}"


def run_report(
    cfg: Config, patient: str, start_date: date, end_date: date, out_dir: Path,
    *, store: ReadingSource, history: AlertHistory,
) -> Path:
    """Write ``out_dir/<patient>-<from>-<to>.html`` and its PNGs; return the page's path.

    ``store`` is the store ``cfg.store`` names and ``history`` reads the alert ledger: both are
    built by the composition root (``homevitals.roots.cli``), as a stage never imports
    another stage.
    """
    home, person = _patient(cfg, patient)
    period = Period(start_date, end_date, home.zone)
    data = load(store, history, patient, period)
    return _write(cfg, home, person, period, data, Path(out_dir))


def run_all(
    cfg: Config, start_date: date, end_date: date, out_dir: Path,
    *, store: ReadingSource, history: AlertHistory, progress: TextIO | None = None,
) -> list[Path]:
    """One report per configured patient; progress lines go to ``progress`` (default: the
    current ``sys.stderr``, looked up when called, so a redirected stderr is honoured)."""
    patients = [p.id for h in cfg.homes for p in h.patients]
    if not patients:
        raise ReportError("the configuration names no patients")
    out = sys.stderr if progress is None else progress
    pages = []
    for i, patient in enumerate(patients, start=1):
        out.write(f"[{i}/{len(patients)}] {patient} ...\n")
        out.flush()
        pages.append(run_report(cfg, patient, start_date, end_date, out_dir,
                                store=store, history=history))
    return pages


def check_store(cfg: StoreConfig) -> None:
    """Refuse a missing embedded store: opening it would create an empty one and report nothing."""
    if cfg.kind == StoreKind.SQLITE and not Path(cfg.path).is_file():
        raise ReportError(f"store unreachable: the SQLite store {cfg.path} does not exist")


def _patient(cfg: Config, patient: str) -> tuple[HomeConfig, PatientConfig]:
    try:
        return cfg.patient(patient)
    except KeyError:
        known = ", ".join(p.id for h in cfg.homes for p in h.patients) or "none"
        raise ReportError(f"unknown patient {patient!r} (configured: {known})") from None


def _write(cfg: Config, home: HomeConfig, person: PatientConfig, period: Period,
           data: PatientData, out_dir: Path) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create the output folder {out_dir}: {exc.strerror}") from exc
    name = report_name(person.id, period.first, period.last)
    glucose, _ = deduplicate(data.glucose)
    metrics = glucose_metrics(data.glucose, period.start, period.end, period.zone)
    profile = agp(data.glucose, period.zone)
    bp_rows, _ = prepare_bp(data.bp, period.zone)

    def image(kind: str, wanted: bool, draw: Callable[[Path], Path]) -> str | None:
        return _image(out_dir / f"{name}-{kind}.png", draw) if wanted else None

    page = Page(
        person.id, person.name, home.id, period, datetime.now(UTC).astimezone(period.zone),
        glucose=metrics,
        agp_image=image("agp", bool(profile.curves),
                        lambda p: figures.agp_figure(profile, metrics, p)),
        agp_reason=profile.reason,
        daily_image=image("daily", not glucose.empty, lambda p: figures.daily_figure(
            glucose, cgm_devices(glucose), period, p)),
        bp=bp_summary(data.bp, period.zone) if len(bp_rows) else None, bp_rows=bp_rows,
        bp_gaps=tuple(empty_days(bp_rows["time"], period.zone, period.start, period.end)),
        bp_image=image("bp", not bp_rows.empty, lambda p: figures.bp_figure(bp_rows, p)),
        heart_rate=vital_stats(data.heart_rate, "heart_rate"),
        spo2=vital_stats(data.spo2, "spo2"),
        vitals_image=image("vitals", not (data.heart_rate.empty and data.spo2.empty),
                           lambda p: figures.vitals_figure(data.heart_rate, data.spo2, p)),
        alerts=data.alerts, alerts_path=cfg.alerts.outbox_path,
        targets=TARGETS[person.glucose_targets],
    )
    path = write_page(page, out_dir / f"{name}.html")
    logger.info("report for %s written to %s", person.id, path)
    return path


def _image(file: Path, draw: Callable[[Path], Path]) -> str:
    """Draw one PNG beside the page; the page refers to it by its file name."""
    try:
        draw(file)
    except OSError as exc:
        raise ReportError(f"cannot write {file}: {exc.strerror}") from exc
    return file.name
