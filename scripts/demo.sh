#!/usr/bin/env bash
# One command: set up and run the demo household through the whole pipeline.
# Embedded defaults: no server to start (an in-process broker unless Debian's mosquitto is on
# the machine, and an SQLite store), the console instead of Twilio.
set -euo pipefail
EXTRAS="gateway,server,demo"
source "$(dirname "$0")/_venv.sh"
exec .venv/bin/homevitals --log-level "${LOG_LEVEL:-WARNING}" demo "$@"
