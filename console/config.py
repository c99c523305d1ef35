"""The care team console's configuration section (assembled into the root model by
``homevitals/vocab/config.py``)."""

from __future__ import annotations

from pydantic import Field

from homevitals.vocab.config_base import Model
from homevitals.vocab.readings import Severity
from homevitals.vocab.risk_config import RiskConfig

__all__ = ["ConsoleConfig"]


class ConsoleConfig(Model):
    """The care team's web console (``homevitals console``): accounts, sessions and its audit
    trail live in its own SQLite file; it reads the alert ledger and the store."""

    host: str = "127.0.0.1"
    port: int = Field(8090, ge=0, le=65535, description="0: any free port (tests)")
    db_path: str = "homevitals-console.sqlite"
    secure_cookies: bool = Field(
        False, description="mark cookies Secure: set when served behind a TLS proxy"
    )
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    lockout_failures: int = Field(5, ge=1, le=100)
    lockout_minutes: float = Field(15.0, gt=0)
    poll_seconds: float = Field(3.0, gt=0, le=60, description="how often the inbox refreshes")
    lookback_days: int = Field(14, ge=1, le=366, description="the patient page's period")
    silent_hours: float = Field(24.0, gt=0, description="a device quiet this long is silent")
    low_battery_percent: float = Field(20.0, gt=0, le=100)
    follow_up_hours: dict[Severity, float] = Field(
        default_factory=lambda: {Severity.CRITICAL: 24.0, Severity.HIGH: 48.0},
        description="severities that create a follow-up task, and hours until it is due",
    )
    follow_up_check_seconds: float = Field(
        60.0, gt=0, description="how often overdue follow-ups are sent to the health manager"
    )
    risk: RiskConfig = Field(default_factory=RiskConfig, description="risk tier rules (issue 15)")
