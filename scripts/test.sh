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
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/python scripts/typecheck.py
echo "== pytest"
exec .venv/bin/pytest "$@"
