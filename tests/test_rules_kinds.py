"""The registry of rule kinds (rules/kinds/__init__.py): a kind is one module, found by its file,
with its tests beside it; the configuration that lists them stays light enough for the Pi."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rules_helpers import ROOT

from homevitals.rules.kinds import discover
from homevitals.vocab.config import KINDS, parse_config
from homevitals.vocab.errors import ConfigError

KIND_MODULE = '''
from typing import Literal
from homevitals.rules.kinds.base import RuleModel

class WanderRuleConfig(RuleModel):
    kind: Literal["{kind}"]
    rooms: int = 1

MODEL = WanderRuleConfig
'''


def test_every_kind_has_its_tests_and_its_documentation() -> None:
    assert list(KINDS) == ["threshold", "event", "rate", "missing", "gateway", "battery",
                           "predicted"]
    docs = (ROOT / "docs" / "rules-and-alerts.md").read_text(encoding="utf-8")
    for kind in KINDS:
        assert (ROOT / "tests" / f"test_kind_{kind}.py").exists(), kind
        assert f"`rules/kinds/{kind}.py`" in docs, kind


def test_an_unknown_kind_is_refused_with_the_known_ones_named() -> None:
    text = "rules:\n  definitions:\n    - {id: a, kind: wander, severity: low, reason: x}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, "r.yaml")
    assert err.value.problems == [
        "r.yaml:3: rules.definitions.0: Input tag 'wander' found using 'kind' does not match any"
        " of the expected tags: 'threshold', 'event', 'rate', 'missing', 'gateway', 'battery',"
        " 'predicted'"]


def test_a_new_kind_is_one_module_found_by_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "more_kinds"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "wander.py").write_text(KIND_MODULE.format(kind="wander"))
    monkeypatch.syspath_prepend(str(tmp_path))
    [(kind, model)] = discover("more_kinds").items()
    assert kind == "wander"
    rule = model.model_validate({"id": "w", "kind": "wander", "severity": "low", "reason": "x"})
    assert (rule.id, rule.opens(), rule.on_reading.__qualname__) == (
        "w", True, "RuleModel.on_reading")  # a kind only overrides the hooks it needs
    (package / "roam.py").write_text(KIND_MODULE.format(kind="wander"))
    with pytest.raises(TypeError, match="more_kinds.roam: kind 'wander' must be the module's"):
        discover("more_kinds")


def test_the_configuration_and_its_rule_kinds_load_without_server_code() -> None:
    """The Raspberry Pi installs no server extra: loading the configuration (and with it every
    rule kind) must import no server dependency, nor the rule engine."""
    probe = ("import sys, homevitals.vocab.config as c; c.parse_config(open(sys.argv[1]).read());"
             " print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe, str(ROOT / "configs" / "homevitals.yaml")],
                         capture_output=True, text=True, check=True).stdout.split()
    heavy = {"pandas", "numpy", "apscheduler", "sqlalchemy", "influxdb_client", "twilio",
             "matplotlib", "homevitals.rules.engine", "homevitals.rules.watch"}
    assert "homevitals.rules.kinds.predicted" in out
    assert heavy.isdisjoint(out)
