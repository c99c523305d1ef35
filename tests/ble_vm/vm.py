"""Boot the BLE VM guest with QEMU (TCG: KVM does not work on this kind of machine, see
docs/ble-vm.md) and collect what the guest wrote.

The code under test reaches the guest over a read-only 9p share that is staged fresh for every
run: the homevitals package laid out as pyproject.toml's package-dir maps it (so the guest
imports exactly this checkout), this harness, and run.json. The guest writes its logs and
results.json to a second, writable 9p share. The image itself is opened with snapshot=on and
stays clean.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .image import Image, ImageError

__all__ = ["VmRun", "boot", "qemu_binary", "stage_share"]

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).resolve().parent


@dataclass
class VmRun:
    returncode: int | None
    seconds: float
    out: Path
    results: dict[str, Any]

    def log(self, name: str, tail: int = 6000) -> str:
        path = self.out / name
        return path.read_text(errors="replace")[-tail:] if path.exists() else f"({name} missing)"


def qemu_binary() -> str:
    path = shutil.which("qemu-system-x86_64")
    if path is None:
        raise ImageError("qemu-system-x86_64 not found (Debian package qemu-system-x86)")
    return path


def stage_share(share: Path, run: dict[str, Any]) -> None:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")
    for name, folder in sorted(mapping.items()):  # parents before their subpackages
        target = share / "src" / Path(*name.split("."))
        if (ROOT / folder).is_dir() and not target.exists():
            shutil.copytree(ROOT / folder, target, ignore=ignore)
    shutil.copytree(HARNESS, share / "harness", ignore=ignore)
    (share / "run.json").write_text(json.dumps(run))


def boot(image: Image, share: Path, out: Path, *, timeout: float, memory_mb: int = 1024) -> VmRun:
    argv = [
        qemu_binary(),
        "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", str(memory_mb),
        "-display", "none", "-monitor", "none", "-no-reboot",
        "-serial", f"file:{out / 'console.log'}",
        "-kernel", str(image.kernel), "-initrd", str(image.initrd),
        "-append", "root=/dev/vda rw console=ttyS0 init=/sbin/hv-init panic=-1 quiet loglevel=4",
        "-drive", f"file={image.rootfs},format=raw,if=virtio,snapshot=on",
        "-virtfs", f"local,path={share},mount_tag=hv,security_model=none,readonly=on",
        "-virtfs", f"local,path={out},mount_tag=hvout,security_model=none",
        # User networking maps the guest's 10.0.2.2 to the host's 127.0.0.1 (the broker); no
        # port is forwarded into the guest.
        "-nic", "user,model=virtio-net-pci",
    ]
    t0 = time.monotonic()
    with open(out / "qemu.log", "wb") as qlog:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=qlog,
                                stderr=subprocess.STDOUT)
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()  # our own QEMU, by its handle
            proc.wait()
            code = None
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    return VmRun(code, time.monotonic() - t0, out, results)
