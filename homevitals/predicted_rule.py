"""The ``predicted`` rule kind's configuration (issue 19): a forecast of CGM glucose.

Kept apart from ``homevitals/config.py`` (which puts it in the ``RuleConfig`` union) so the
forecasting knobs sit in one place; the arithmetic is in ``rules/predict.py``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from homevitals.readings import Measurement, Severity, check_id
from homevitals.units import Unit

__all__ = ["PredictedRuleConfig"]


class PredictedRuleConfig(BaseModel):
    """Fires when the forecast ``horizon_minutes`` ahead is below ``below`` while the value now
    is not; does nothing when the stream is too sparse or noisy to forecast from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: Literal["predicted"]
    measurement: Measurement = Measurement.GLUCOSE
    field: str = "glucose"
    unit: Unit = Unit.MMOL_PER_L
    below: float = Field(3.0, gt=0, description="the predicted value that fires")
    clear_at: float | None = Field(
        None, description="resolve once the forecast is back to here (default: below + 0.9)"
    )
    horizon_minutes: float = Field(20.0, ge=5, le=60, description="how far ahead to forecast")
    predictor: Literal["linear", "ar2"] = Field(
        "ar2", description="linear: least-squares trend; ar2: Nightscout's AR2 forecast"
    )
    span_minutes: float = Field(20.0, ge=10, le=60, description="history the linear fit uses")
    max_gap_minutes: float = Field(
        10.0, gt=0, description="a longer silence between readings breaks the stream"
    )
    settle_minutes: float = Field(
        30.0, ge=0,
        description="the stream must have run unbroken this long (a new sensor warming up,"
        " a reconnection) before anything is forecast",
    )
    max_step: float = Field(
        0.3, gt=0,
        description="mmol/L per minute: a faster change between two readings is not physiology"
        " (a compression low, a sensor glitch); no forecast across it",
    )
    confirm_readings: int = Field(
        1, ge=1, le=6, description="the forecast must be low on this many readings in a row"
    )
    now_below: float | None = Field(
        None, gt=0,
        description="forecast only while the value now is below this (a fall after a meal"
        " bolus from high values is the insulin working, not a low coming)",
    )
    devices: list[str] = Field(["cgm"], description="device kinds whose readings are used")
    severity: Severity = Severity.MEDIUM
    reason: str = Field(min_length=1)
    episode: str | None = Field(
        None, description="rules naming the same episode form one alert per patient (issue 14)"
    )
    opens_episode: bool = Field(True, description="false: only joins an open episode")

    _id = field_validator("id")(lambda v: check_id("rule", v))

    @model_validator(mode="after")
    def _clear(self) -> PredictedRuleConfig:
        if self.clear_at is not None and self.clear_at < self.below:
            raise ValueError(f"rule {self.id}: clear_at must be >= below ({self.below})")
        return self

    @property
    def clear_value(self) -> float:
        return self.clear_at if self.clear_at is not None else self.below + 0.9
