"""The shape of the house: stages meet only through the shared vocabulary, and every package
folder is installed under the name the code imports it by."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
STAGES = {
    name.split(".")[1]: folder for name, folder in PACKAGE_DIRS.items() if name.count(".") == 1
}
# The composition roots: the only modules allowed to wire stages together.
COMPOSITION_ROOTS = {
    "homevitals/console_wiring.py",
    "homevitals/console_records.py",  # the console's store side, split from console_wiring
    "homevitals/console_summaries.py",
    "homevitals/alert_readings.py",  # the ledger's history with readings, for report and console
    "homevitals/cli.py",
    "homevitals/cli_devices.py",
    "homevitals/demo.py",
    "homevitals/replay.py",
    "homevitals/replay_homes.py",
    "homevitals/replay_output.py",
    "homevitals/scripted_gateway.py",
}
# The root configuration model assembles the stages' own sections (issue 16): it may import a
# stage's configuration (``rules/config.py``, the rule kinds in ``rules/kinds/``), nothing else.
CONFIG_ROOT = "homevitals/config.py"
STAGE_CONFIG = ("config", "kinds")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _stage_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] == "homevitals" and parts[1] in STAGES:
        return parts[1]
    return None


def test_stages_never_import_each_other() -> None:
    offences = []
    for stage, folder in STAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            for module in _imports(path):
                other = _stage_of(module)
                if other is not None and other != stage:
                    offences.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offences == []


def _stage_config(module: str) -> bool:
    parts = module.split(".")
    return _stage_of(module) is not None and len(parts) > 2 and parts[2] in STAGE_CONFIG


def test_shared_package_imports_no_stage_outside_composition_roots() -> None:
    offences = []
    for path in (ROOT / "homevitals").rglob("*.py"):
        rel = str(path.relative_to(ROOT))
        if rel in COMPOSITION_ROOTS:
            continue
        allowed = _stage_config if rel == CONFIG_ROOT else (lambda m: False)
        offences += [f"{rel} imports {m}" for m in _imports(path) if _stage_of(m)
                     and not allowed(m)]
    assert offences == []


def test_every_package_folder_is_installed() -> None:
    declared = set(PYPROJECT["tool"]["setuptools"]["packages"])
    mapped = {folder: name for name, folder in PACKAGE_DIRS.items()}
    missing = []
    for folder in mapped:
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT).as_posix()
            name = mapped.get(rel) or next(
                (
                    mapped[f] + rel[len(f) :].replace("/", ".")
                    for f in mapped
                    if rel.startswith(f + "/")
                ),
                None,
            )
            if name not in declared or name not in PACKAGE_DIRS:
                missing.append(f"{rel} (as {name})")
    assert missing == [], (
        "add these to [tool.setuptools] packages and package-dir in pyproject.toml"
    )
