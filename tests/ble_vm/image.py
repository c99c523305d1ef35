"""Build (once) and cache the BLE VM guest: Debian bookworm with BlueZ, a kernel with hci_vhci,
and a Python venv holding bleak, bumble and the gateway's dependencies.

The cache lives in ``$HOMEVITALS_BLEVM_CACHE`` or ``~/.cache/homevitals/ble-vm`` and is keyed
by a hash of the recipe below, so editing the recipe builds a new image and leaves old ones
alone. The code under test is never baked in: it reaches the guest over a 9p share at each boot.

Recipe facts (docs/ble-vm.md, "Recipe facts"): debootstrap minbase + ``mkfs.ext4 -d`` needs no loop
device or mount; the guest's wheels are fetched on the host with ``pip download
--only-binary=:all:`` for cp311/manylinux (bookworm's python3 is 3.11) and installed offline in
a chroot; kernel and initrd are taken out of the image for QEMU's direct kernel boot.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Image", "ImageError", "cache_root", "ensure_image", "recipe_hash"]

SUITE = "bookworm"
DEBIAN_PACKAGES = (
    "linux-image-amd64", "initramfs-tools", "kmod", "udev", "bluez", "dbus", "iproute2",
    "python3", "python3-venv",
)
# Pinned so the cache key means something; bleak and bumble as in docs/ble-vm.md.
GUEST_REQUIREMENTS = (
    "bleak==3.1.0", "bumble==0.0.226", "paho-mqtt==2.2.0", "pydantic==2.14.3", "PyYAML==6.0.3",
    "prometheus_client==0.26.0",  # a base dependency: the gateway serves /metrics
    "dbus-fast==5.2.0",  # bleak's BlueZ backend and the gateway's pairing agent
)
IMAGE_SIZE = "1500M"
GUEST_VENV = "/opt/hv"
_PLATFORMS = (
    "manylinux_2_36_x86_64", "manylinux_2_34_x86_64", "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_5_x86_64",
    "manylinux1_x86_64", "linux_x86_64",
)

# PID 1 of the guest (no systemd): mount what the harness needs and hand over to the harness's
# own init script on the read-only 9p share, so changing that script needs no rebuild. Without
# udev nothing autoloads modules, hence the explicit modprobes. If the harness returns, power
# off (sysrq 'o'); with QEMU's -no-reboot a panic of PID 1 also ends the VM.
HV_INIT = """#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
modprobe 9pnet_virtio
modprobe 9p
mkdir -p /mnt/hv /mnt/out
mount -t 9p -o trans=virtio,version=9p2000.L,ro hv /mnt/hv
mount -t 9p -o trans=virtio,version=9p2000.L hvout /mnt/out
/bin/sh /mnt/hv/harness/guest_init.sh > /mnt/out/init.log 2>&1
echo "hv-init: harness exited with $?"
sync
echo o > /proc/sysrq-trigger
sleep 30
"""


class ImageError(RuntimeError):
    """The guest image cannot be prepared; the message names what is missing."""


@dataclass(frozen=True)
class Image:
    kernel: Path
    initrd: Path
    rootfs: Path
    guest_python: str = f"{GUEST_VENV}/bin/python"


def recipe_hash() -> str:
    recipe = {
        "version": 1,
        "suite": SUITE,
        "packages": DEBIAN_PACKAGES,
        "requirements": GUEST_REQUIREMENTS,
        "size": IMAGE_SIZE,
        "init": HV_INIT,
        "venv": GUEST_VENV,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def cache_root() -> Path:
    env = os.environ.get("HOMEVITALS_BLEVM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "homevitals" / "ble-vm"


def ensure_image(log: Callable[[str], None] = print) -> Image:
    """The cached image for the current recipe, building it first if needed (under a lock, so
    concurrent test runs on one machine build it once)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    final = root / recipe_hash()
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (final / "READY").exists():
            _build(final, log)
    return Image(final / "vmlinuz", final / "initrd.img", final / "rootfs.img")


def _require_tools() -> None:
    missing = [
        f"{tool} (Debian package {pkg})"
        for tool, pkg in (("debootstrap", "debootstrap"), ("mkfs.ext4", "e2fsprogs"),
                          ("chroot", "coreutils"))
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()
    ]
    if missing:
        raise ImageError("cannot build the BLE VM image: missing " + ", ".join(missing))
    if os.geteuid() != 0:
        raise ImageError("cannot build the BLE VM image: debootstrap and chroot need root")


def debian_mirror() -> str:
    """The Debian mirror apt already uses here (deb822 .sources or a one-line sources.list)."""
    if os.environ.get("HOMEVITALS_BLEVM_MIRROR"):
        return os.environ["HOMEVITALS_BLEVM_MIRROR"]
    apt = Path("/etc/apt")
    for f in sorted(apt.glob("sources.list.d/*.sources")):
        for stanza in f.read_text(errors="replace").split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and "security" not in uris.group(1):
                return uris.group(1)
    for f in [apt / "sources.list", *sorted(apt.glob("sources.list.d/*.list"))]:
        if f.exists():
            m = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s", f.read_text(), re.M)
            if m:
                return m.group(1)
    return "http://deb.debian.org/debian"


def _run(argv: list[str], log_file: Path, what: str, env: dict[str, str] | None = None) -> None:
    with open(log_file, "a") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        tail = log_file.read_text(errors="replace")[-3000:]
        raise ImageError(f"BLE VM image: {what} failed (exit {proc.returncode}); "
                         f"log {log_file}:\n{tail}")


def _build(final: Path, log: Callable[[str], None]) -> None:
    _require_tools()
    work = final.with_name(final.name + ".build")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(final, ignore_errors=True)
    rootfs, wheels, build_log = work / "root", work / "wheels", work / "build.log"
    work.mkdir(parents=True)
    t0 = time.monotonic()
    mirror = debian_mirror()
    log(f"BLE VM image: building {final.name} (debootstrap {SUITE} from {mirror}); "
        f"log {build_log}")
    _run(["debootstrap", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}",
          SUITE, str(rootfs), mirror], build_log, f"debootstrap from {mirror}")
    log(f"BLE VM image: debootstrap done in {time.monotonic() - t0:.0f} s")
    _guest_venv(rootfs, wheels, build_log)
    _finish(rootfs, work, build_log)
    shutil.rmtree(rootfs)
    shutil.rmtree(wheels, ignore_errors=True)
    work.rename(final)
    (final / "READY").write_text(f"built in {time.monotonic() - t0:.0f} s\n")
    log(f"BLE VM image: built in {time.monotonic() - t0:.0f} s at {final}")


def _guest_venv(rootfs: Path, wheels: Path, build_log: Path) -> None:
    platforms = [a for p in _PLATFORMS for a in ("--platform", p)]
    _run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", *platforms,
          "--python-version", "3.11", "--implementation", "cp", "-d", str(wheels),
          *GUEST_REQUIREMENTS], build_log, "pip download of the guest's wheels")
    shutil.copytree(wheels, rootfs / "tmp" / "wheels")
    # The host's PIP_* settings (find-links, indexes) mean nothing inside the chroot.
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    _run(["chroot", str(rootfs), "python3", "-m", "venv", GUEST_VENV], build_log,
         "venv in the guest", env)
    _run(["chroot", str(rootfs), f"{GUEST_VENV}/bin/pip", "install", "-q", "--no-index",
          "--find-links", "/tmp/wheels", *GUEST_REQUIREMENTS], build_log,
         "offline pip install in the guest", env)
    shutil.rmtree(rootfs / "tmp" / "wheels")


def _finish(rootfs: Path, work: Path, build_log: Path) -> None:
    init = rootfs / "sbin" / "hv-init"
    init.write_text(HV_INIT)
    init.chmod(0o755)
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise ImageError(f"BLE VM image: no kernel in {rootfs}/boot after debootstrap")
    version = kernels[-1].name.removeprefix("vmlinuz-")
    initrd = rootfs / "boot" / f"initrd.img-{version}"
    if not initrd.exists():
        _run(["chroot", str(rootfs), "update-initramfs", "-c", "-k", version], build_log,
             "update-initramfs in the guest")
    shutil.copy2(kernels[-1], work / "vmlinuz")
    shutil.copy2(initrd, work / "initrd.img")
    for junk in (rootfs / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        junk.unlink()
    _run(["mkfs.ext4", "-q", "-F", "-L", "hvroot", "-d", str(rootfs), str(work / "rootfs.img"),
          IMAGE_SIZE], build_log, "mkfs.ext4 -d")


if __name__ == "__main__":
    print(ensure_image())
