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
# tests/test_cluster_ingest.py, tests/test_cluster_rules.py: a three-node RabbitMQ cluster
# (docs/cluster.md);
# bench/cluster_brokers.py also compares NATS JetStream.
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
[ -x /usr/sbin/nats-server ] || missing+=(nats-server)
# tests/test_cluster_partition.py: each broker node in a network namespace (ip netns, as root)
[ -x /usr/sbin/ip ] || missing+=(iproute2)
# tests/test_cluster_alerts.py, tests/test_cluster_rules.py: the alert ledger and the rules' state on
# PostgreSQL, and Patroni over etcd (pg_servers.py)
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql-15)
command -v patroni >/dev/null || missing+=(patroni)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
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
status=0
.venv/bin/pytest "$@" || status=$?

# The lowest paho the project allows (pyproject: paho-mqtt>=2.1,<3) in a small second venv:
# the MQTT client tests and ingest's fallback (homevitals/infra/paho_internals.py) run against it too;
# the main suite above covers the newest. Either failing fails the run.
echo "== pytest against paho-mqtt 2.1.0 (.venv-paho-min)"
PAHO_MIN=2.1.0
if [ ! -x .venv-paho-min/bin/python ]; then "$PYTHON" -m venv .venv-paho-min; fi
.venv-paho-min/bin/python -m pip install -q --no-deps -e . >/dev/null
.venv-paho-min/bin/python -m pip install -q "paho-mqtt==$PAHO_MIN" "pydantic>=2.5,<3" \
  "PyYAML>=6,<7" "prometheus_client>=0.20,<1" "pytest>=8,<10" >/dev/null
.venv-paho-min/bin/python -c "import paho.mqtt, sys; sys.exit(paho.mqtt.__version__ != '$PAHO_MIN')"
.venv-paho-min/bin/pytest -q -p no:cacheprovider tests/test_mqtt_client.py \
  tests/test_paho_fallback.py || status=$?
exit $status
