"""homevitals reports stage: readings and alerts of one period -> an HTML page with figures."""

from homevitals.reports.errors import ReportError
from homevitals.reports.main import run_all, run_report

__all__ = ["ReportError", "run_all", "run_report"]
