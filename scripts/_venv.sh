# Shared by scripts/demo.sh and scripts/test.sh: a Python 3.11+ virtual environment in .venv
# with homevitals installed from this checkout. Installs Debian packages only when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Another apt (unattended-upgrades, a second install) may hold the dpkg and lists locks: wait
# for it, up to 10 minutes, instead of failing at once (apt.conf(5): DPkg::Lock::Timeout).
APT_WAIT=(-o DPkg::Lock::Timeout=600)

apt_install() {
  echo "installing Debian packages: $* (waiting for any other apt to finish)" >&2
  $SUDO apt-get "${APT_WAIT[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${APT_WAIT[@]}" install -y -qq \
    --no-install-recommends "$@" >/dev/null
}

PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null; then apt_install python3 python3-venv; fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "homevitals needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version)" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then apt_install python3-venv; fi
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[$EXTRAS]"
