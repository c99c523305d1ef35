"""Run mypy on the installed package layout.

The stage folders (gateway/, ingest/, ...) are mapped to ``homevitals.<stage>`` by
pyproject.toml's package-dir; mypy cannot follow that mapping (nor setuptools' editable import
hook), so this builds the package tree mypy expects out of symbolic links and checks that.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"


def build_tree() -> Path:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    pkg = TREE / "homevitals"
    if TREE.exists():
        subprocess.run(["rm", "-rf", str(TREE)], check=True)
    pkg.mkdir(parents=True)
    for item in (ROOT / "homevitals").iterdir():
        if item.suffix == ".py" or (item.is_dir() and (item / "__init__.py").exists()):
            (pkg / item.name).symlink_to(item)
    for name, folder in sorted(mapping.items()):
        parts = name.split(".")
        # homevitals.<stage>; the shared package's sub-packages (homevitals/vocab ...) were linked
        # above, and deeper packages come along with their parent
        if len(parts) == 2 and not folder.startswith("homevitals/"):
            (pkg / parts[1]).symlink_to(ROOT / folder)
    return TREE


def main() -> int:
    tree = build_tree()
    return subprocess.call(
        [sys.executable, "-m", "mypy", str(tree / "homevitals"), *sys.argv[1:]], cwd=ROOT
    )


if __name__ == "__main__":
    sys.exit(main())
