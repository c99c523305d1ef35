"""The shared base of every rule kind: its common fields, and the hooks the engine calls.

A kind (``rules/kinds/<kind>.py``) is a ``RuleModel`` subclass with ``kind: Literal["<kind>"]``,
its own fields and validators, and the hooks it needs overridden; the registry
(``rules/kinds/__init__.py``) finds it by its module's ``MODEL``. Every hook does nothing by
default, so a kind only says what it reacts to: a reading, an event, the clock, a home heard
from again, a device battery. The engine and ``rules/watch.py`` call the hooks of every rule of a
patient in turn and never ask which kind a rule is.

This module and the kinds' models are pure pydantic (the Raspberry Pi loads the configuration);
what the hooks work with (the engine, its state) is named for the type checker only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, TypeVar

from pydantic import Field, ValidationError, field_validator

from homevitals.vocab.config_base import Model, RuleOverride
from homevitals.vocab.readings import Measurement, Severity, check_id
from homevitals.vocab.units import FIELD_UNITS

if TYPE_CHECKING:
    from homevitals.rules.engine import RuleEngine
    from homevitals.rules.episodes import Subject
    from homevitals.rules.state import HomeSeen, State
    from homevitals.vocab.readings import AlertDecision, Event, Reading

__all__ = ["RuleModel", "RuleOverride", "effective_rule", "episode_of"]

Problem = tuple[str, str]  # (the key within the rule, what is wrong)


class RuleModel(Model):
    """What every rule has: an id, its kind, how severe it is, what to tell people, and the
    episode its condition belongs to (issue 14)."""

    # Where the kind is listed among the others (in the error for an unknown kind): the kinds
    # that predate the registry keep their order; a new kind can leave it.
    rank: ClassVar[int] = 100

    id: str
    kind: str
    severity: Severity
    reason: str = Field(min_length=1)
    episode: str | None = Field(
        None, description="rules naming the same episode form one alert per patient (issue 14)"
    )

    _id = field_validator("id")(lambda v: check_id("rule", v))

    # --- what the configuration checks across rules and sections -------------------------------
    def opens(self) -> bool:
        """False for a condition that only joins an episode another rule opened."""
        return True

    def announces_join(self) -> bool:
        """True: joining an open episode of the same severity sends an update (no SMS of its
        own; a route may page the doctor at once on it, ``doctor_at_once_rules``)."""
        return False

    def names_unknown(self, ids: set[str]) -> str | None:
        """What is wrong when this rule names another rule that is not among ``ids``."""
        return None

    def problems(self, produced: set[Measurement] | None) -> Iterator[Problem]:
        """What is wrong with the rule given the measurements the configured devices produce
        (None: no homes configured, nothing to check against)."""
        yield from _unit_problems(self)

    # --- what the engine and the watch ask of every rule ---------------------------------------
    def watches(self) -> Measurement | None:
        """The measurement whose absence this rule judges (its arrivals are remembered)."""
        return None

    def keeps_trend(self, measurement: Measurement, field: str) -> bool:
        """Does this rule keep a window of ``measurement.field`` the SMS trend can use?"""
        return False

    # --- evaluation hooks: each returns the decision it made (emitted through the engine) -------
    def on_reading(
        self, engine: RuleEngine, st: State, s: Subject, r: Reading
    ) -> AlertDecision | None:
        """A reading of the patient's, judged in the same transaction as its decisions."""
        return None

    def on_arrival(
        self, engine: RuleEngine, st: State, s: Subject, r: Reading, now: datetime,
        prev: datetime | None,
    ) -> AlertDecision | None:
        """A reading arrived at ``now``; ``prev`` is when its measurement last did (the watch)."""
        return None

    def on_event(self, engine: RuleEngine, st: State, s: Subject, e: Event) -> AlertDecision | None:
        return None

    def on_clock(
        self, engine: RuleEngine, st: State, s: Subject, now: datetime, seen: HomeSeen | None
    ) -> AlertDecision | None:
        """Judged at ``now`` without a message: on a clock tick and on any message of the home."""
        return None

    def next_check(
        self, engine: RuleEngine, st: State, s: Subject, seen: HomeSeen | None
    ) -> datetime | None:
        """When ``on_clock`` could next decide something if nothing arrives until then (None:
        never): the due time the rules' timer keeps for this rule and patient. Never later
        than that moment (earlier only costs a look)."""
        return None

    def on_home_heard(
        self, engine: RuleEngine, st: State, s: Subject, at: datetime, prev: datetime | None
    ) -> AlertDecision | None:
        """The patient's home was heard from at ``at`` (the time before: ``prev``)."""
        return None

    def on_batteries(
        self, engine: RuleEngine, st: State, s: Subject, at: datetime
    ) -> AlertDecision | None:
        """A device battery level of the patient's changed (``st.batteries``)."""
        return None


def _unit_problems(rule: RuleModel) -> Iterator[Problem]:
    """A rule's field must exist on the wire, in the unit the wire uses."""
    measurement, field, unit = (getattr(rule, a, None) for a in ("measurement", "field", "unit"))
    if measurement is None or field is None or unit is None:
        return
    known = FIELD_UNITS.get(str(measurement), {})
    if field not in known:
        yield "field", (f"rule {rule.id}: {measurement} has no field {field!r}"
                        f" (fields: {', '.join(sorted(known))})")
    elif known[field] != unit:
        yield "unit", (f"rule {rule.id}: {measurement}.{field} is in {known[field]}, not {unit}")


def episode_of(rule: RuleModel) -> str:
    """The episode a rule's conditions belong to: its ``episode``, else a name of its own."""
    return str(rule.episode or rule.id)


R = TypeVar("R", bound=RuleModel)


def effective_rule(rule: R, override: RuleOverride | None) -> R:
    """``rule`` with a patient's override applied and validated again (ValueError if invalid)."""
    if override is None:
        return rule
    changes = override.model_dump(exclude_unset=True, exclude={"disabled"})
    if "below" in changes and "above" not in changes and hasattr(rule, "above"):
        changes["above"] = None  # a new floor replaces the bound, whichever it was
    if "above" in changes and "below" not in changes and hasattr(rule, "below"):
        changes["below"] = None
    try:
        return type(rule).model_validate({**rule.model_dump(), **changes})
    except ValidationError as exc:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise ValueError(f"override of rule {rule.id}: {problems}") from None
