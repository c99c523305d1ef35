"""The shape of the house: stages meet only through the shared vocabulary, and every package
folder is installed under the name the code imports it by."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
# The stage folders; the shared package's own sub-packages (homevitals/vocab ...) are not stages.
STAGES = {
    name.split(".")[1]: folder
    for name, folder in PACKAGE_DIRS.items()
    if name.count(".") == 1 and not folder.startswith("homevitals/")
}
# The composition roots: the only modules allowed to wire stages together.
COMPOSITION_ROOTS = {
    path.relative_to(ROOT).as_posix()
    for path in (ROOT / "homevitals" / "roots").rglob("*.py")
}
# The root configuration model assembles the stages' own sections (issue 16): it may import a
# stage's configuration (``rules/config.py``, the rule kinds in ``rules/kinds/``), nothing else.
CONFIG_ROOT = "homevitals/vocab/config.py"
STAGE_CONFIG = ("config", "kinds")


def _imports(path: Path) -> set[str]:
    return _imported(ast.parse(path.read_text(encoding="utf-8"), str(path)))


def _imported(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)  # and ``from a import b`` may import module a.b
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
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


# Inside the shared package (issue 16): the vocabulary imports neither the runtime nor the
# composition roots, and the runtime imports no composition root.
LAYERS_BELOW = {"vocab": ("infra", "roots"), "infra": ("roots",)}


def test_the_shared_package_holds_only_its_sub_packages() -> None:
    loose = sorted(p.name for p in (ROOT / "homevitals").glob("*.py") if p.name != "__init__.py")
    assert loose == [], "put each module in homevitals/vocab, infra or roots"


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "homevitals" else None


def test_vocabulary_and_runtime_import_nothing_above_them() -> None:
    offences = []
    for sub, above in LAYERS_BELOW.items():
        for path in (ROOT / "homevitals" / sub).rglob("*.py"):
            offences += [f"{path.relative_to(ROOT)} imports {m}" for m in _imports(path)
                         if _layer(m) in above]
    assert offences == []


def _files_of(module: str) -> list[Path]:
    """The file that defines ``module`` (a package's ``__init__.py``), as package-dir maps it."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        folder = PACKAGE_DIRS.get(".".join(parts[:n]))
        if folder is not None:
            base = ROOT / folder / "/".join(parts[n:])
            found = [base / "__init__.py"] + ([base.with_suffix(".py")] if parts[n:] else [])
            return [path for path in found if path.is_file()]
    return []


def _pi_files() -> dict[Path, set[str]]:
    """Every file of ours that ``homevitals gateway`` can load, with what each imports: the
    command's module-level imports, then the gateway stage and everything it imports, lazily or
    not, at any depth. A package that discovers its modules (pkgutil) loads all of them."""
    seen: dict[Path, set[str]] = {}
    todo = sorted((ROOT / STAGES["gateway"]).rglob("*.py"))
    for name in ("cli", "cli_devices"):  # they import the other commands' stages lazily
        path = ROOT / "homevitals" / "roots" / f"{name}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        top: list[ast.stmt] = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        seen[path] = _imported(ast.Module(top, []))
        todo += [f for m in sorted(seen[path]) for f in _files_of(m)]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = _imports(path)
        if path.name == "__init__.py" and "pkgutil" in seen[path]:
            todo += sorted(path.parent.glob("*.py"))
        todo += [f for m in sorted(seen[path]) for f in _files_of(m)]
    return seen


def test_nothing_the_pi_loads_imports_a_server_dependency() -> None:
    """The Raspberry Pi installs homevitals with the gateway extra only (docs/raspberry-pi.md)."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    server = {
        re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].lower().replace("-", "_")
        for extra in ("server", "cluster", "demo", "sim")
        for spec in extras[extra]
    } | {"numpy"}  # pandas' and matplotlib's
    pi = {re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].lower()
          for spec in [*PYPROJECT["project"]["dependencies"], *extras["gateway"]]}
    server -= pi
    files = _pi_files()
    assert ROOT / "gateway" / "main.py" in files and len(files) > 30
    offences = sorted(
        f"{path.relative_to(ROOT)} imports {m}"
        for path, imported in files.items()
        for m in imported
        if m.split(".")[0] in server
    )
    assert offences == []
