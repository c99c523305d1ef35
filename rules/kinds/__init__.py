"""The rule kinds, one module each (``rules/kinds/<kind>.py``): its configuration model on the
shared base (``base.py``), its evaluation, and beside it in ``tests/test_kind_<kind>.py`` its
tests.

The registry finds them: every module here but ``base`` names its model in ``MODEL``, and its
file name is the kind (``kind: Literal["<kind>"]``). ``RuleConfig`` is the union of the models,
told apart by ``kind``, which the configuration's ``rules.definitions`` is a list of. Adding a
kind is adding a module (docs/rules-and-alerts.md, "Adding a rule kind").
"""

from __future__ import annotations

import importlib
import operator
import pkgutil
from functools import reduce
from typing import TYPE_CHECKING, Annotated, get_args

from pydantic import Field

from homevitals.rules.kinds.base import RuleModel, RuleOverride, effective_rule, episode_of

__all__ = [
    "KINDS", "RuleConfig", "RuleModel", "RuleOverride", "discover", "effective_rule", "episode_of",
]


def discover(package: str) -> dict[str, type[RuleModel]]:
    """The kinds in ``package``, in the order they are listed: each module but ``base`` (and
    private ones) must name its ``RuleModel`` subclass in ``MODEL``, of the module's kind."""
    found: list[tuple[int, str, type[RuleModel]]] = []
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if info.name == "base" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        model = getattr(module, "MODEL", None)
        if not (isinstance(model, type) and issubclass(model, RuleModel)):
            raise TypeError(f"{module.__name__}: MODEL must name the kind's RuleModel subclass")
        (kind,) = get_args(model.model_fields["kind"].annotation)
        if kind != info.name:
            raise TypeError(f"{module.__name__}: kind {kind!r} must be the module's name")
        found.append((model.rank, kind, model))
    return {kind: model for _, kind, model in sorted(found, key=lambda f: f[:2])}


KINDS: dict[str, type[RuleModel]] = discover(__name__)

if TYPE_CHECKING:
    RuleConfig = RuleModel
else:
    RuleConfig = Annotated[reduce(operator.or_, KINDS.values()), Field(discriminator="kind")]
