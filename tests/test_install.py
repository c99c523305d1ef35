"""Installing homevitals: no setuptools warning banners, the data files in the wheel, and the
install script waits for another apt instead of failing (issue 18)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_builds_without_warnings_and_carries_its_data(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    log = out.stdout + out.stderr
    assert "SetuptoolsDeprecationWarning" not in log
    assert "is absent from the `packages` configuration" not in log
    [wheel] = tmp_path.glob("homevitals-*.whl")
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        metadata = next(whl.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "homevitals/simulators/households/demo.yaml" in names
    assert "homevitals/simulators/scenarios/night-low.yaml" in names
    assert "homevitals/alerts/templates/zh-Hans.yaml" in names  # issue 20: the SMS words
    assert "homevitals/rules/kinds/predicted.py" in names  # found by the registry at run time
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert any(line.startswith("Requires-Dist: urllib3") and "server" in line
               for line in metadata.splitlines())


def test_apt_waits_for_the_dpkg_lock(tmp_path: Path) -> None:
    # A stand-in apt-get that records its arguments: the script's apt_install as it runs.
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\n')
    (stub / "apt-get").chmod(0o755)
    script = (f'set -e; SUDO=""; eval "$(sed -n \'/^APT_WAIT=/p; /^apt_install()/,/^}}/p\''
              f' {ROOT}/scripts/_venv.sh)"; apt_install mosquitto influxdb')
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30,
                         env={**os.environ, "PATH": f"{stub}:{os.environ['PATH']}"})
    assert out.returncode == 0, out.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    wait = "-o DPkg::Lock::Timeout=600"
    assert calls == [f"{wait} update -qq",
                     f"{wait} install -y -qq --no-install-recommends mosquitto influxdb"]
    assert "waiting for any other apt to finish" in out.stderr
