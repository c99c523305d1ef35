"""docs/server.md, followed as far as a test can: its InfluxDB steps run as written (with curl)
against a real influxd with authentication on, and ingest then writes with the user they made;
its configuration passes `homevitals check-config`."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from daemons import HOMEVITALS

from homevitals.ingest.errors import StoreError
from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.vocab.readings import FieldValue, Measurement, Reading
from homevitals.vocab.units import Unit

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "server.md"
SECRETS = {"admin": "admin-secret", "ingest": "ingest-secret", "reader": "reader-secret"}


def _block(name: str) -> str:
    """The fenced block that follows ``<!-- guide-test: name -->`` in the guide."""
    found = re.search(
        rf"<!-- guide-test: {name} -->\n```[a-z]*\n(.*?)\n```", GUIDE.read_text("utf-8"), re.S
    )
    assert found, f"docs/server.md has no block marked guide-test: {name}"
    return found.group(1)


def _reading() -> Reading:
    at = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    return Reading(
        reading_id="r-guide", home="home-novak", patient="ana", device="glucometer-1",
        measurement=Measurement.GLUCOSE, fields={"glucose": FieldValue(5.4, Unit.MMOL_PER_L)},
        time=at, received_at=at,
    )


def test_the_influxdb_steps_make_a_database_an_ingest_user_and_a_reader(
    tmp_path: Path, influxd_factory: Any
) -> None:
    assert shutil.which("curl"), "the guide uses curl: apt-get install curl"
    server = influxd_factory(auth_enabled=True)
    etc = tmp_path / "etc"
    etc.mkdir()
    for who, secret in SECRETS.items():
        (etc / f"influx-{who}-password").write_text(secret + "\n", encoding="utf-8")
    script = _block("influxdb").replace("/etc/homevitals/", f"{etc}/").replace(
        "http://127.0.0.1:8086", server.url
    )
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert '"homevitals-ingest",false' in done.stdout.replace(" ", "")  # SHOW USERS, as JSON

    span = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    ingest = InfluxV1Store(server.url, "homevitals", "five_years", "homevitals-ingest",
                           SECRETS["ingest"])
    ingest.write([_reading()])
    reader = InfluxV1Store(server.url, "homevitals", "five_years", "homevitals-reader",
                           SECRETS["reader"])
    rows = reader.query_readings("glucose", "ana", *span)
    assert [(r["reading_id"], r["glucose"]) for r in rows] == [("r-guide", 5.4)]
    with pytest.raises(StoreError, match="not authorized"):
        reader.write([_reading()])  # the reader may only read
    with pytest.raises(StoreError, match="not authorized"):
        ingest.query_readings("glucose", "ana", *span)  # and ingest may only write


def test_the_configuration_in_the_guide_passes_check_config(tmp_path: Path) -> None:
    path = tmp_path / "homevitals.yaml"
    path.write_text(_block("config"), encoding="utf-8")
    done = subprocess.run([*HOMEVITALS, "check-config", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
