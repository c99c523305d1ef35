#!/usr/bin/env bash
# One command: install what the tests need (Debian's mosquitto and influxdb included) and run
# the checks and the whole test suite against real servers started by the tests themselves.
set -euo pipefail
EXTRAS="test"
source "$(dirname "$0")/_venv.sh"

missing=()
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || missing+=(mosquitto)
command -v influxd >/dev/null || missing+=(influxdb)
command -v systemd-analyze >/dev/null || missing+=(systemd)  # verifies configs/systemd/
command -v dbus-daemon >/dev/null || missing+=(dbus)  # the pairing agent on a private bus
command -v curl >/dev/null || missing+=(curl)  # tests/test_server_guide.py runs docs/server.md
# tests/test_console_browser.py: Playwright drives Debian's chromium (its own download is not
# reachable from every network), launched with executable_path=/usr/bin/chromium.
[ -x /usr/bin/chromium ] || missing+=(chromium)
# tests/test_ble_vm.py: QEMU guest with BlueZ + bumble (docs/ble-vm.md); its image is cached in
# ~/.cache/homevitals/ble-vm (HOMEVITALS_BLEVM_CACHE), built on first use (~5 min).
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v qemu-img >/dev/null || missing+=(qemu-utils)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v mkfs.ext4 >/dev/null || [ -x /usr/sbin/mkfs.ext4 ] || missing+=(e2fsprogs)
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/python scripts/typecheck.py
echo "== pytest"
exec .venv/bin/pytest "$@"
