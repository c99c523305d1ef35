"""What Prometheus scrapes from ingest before anything went wrong: every rejection reason at 0
(so the first one shows in increase()), and the release running (issue 18)."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path
from typing import Any

from daemons import Daemon, wait_until, write_config
from servers import free_port

from homevitals.ingest.main import REJECT_REASONS
from homevitals.simulators.household import demo_config

ROOT = Path(__file__).resolve().parent.parent


def test_every_wire_reason_is_a_known_ingest_reason() -> None:
    source = (ROOT / "homevitals" / "vocab" / "wire.py").read_text(encoding="utf-8")
    raised = set(re.findall(r'WireError\(\s*"([a-z_]+)"', source))
    assert raised and raised <= set(REJECT_REASONS), raised - set(REJECT_REASONS)


def test_ingest_rejections_start_at_zero_and_build_info(tmp_path: Path, mosquitto: Any) -> None:
    port = free_port()
    data = demo_config().model_dump(mode="json", exclude_none=True)
    data["mqtt"] = {"host": "127.0.0.1", "port": mosquitto.port}
    data["store"] = {"kind": "sqlite", "path": str(tmp_path / "store.sqlite")}
    data["ingest"] = {"metrics": {"port": port}}
    ingest = Daemon("ingest", write_config(tmp_path / "site.yaml", data), tmp_path)

    def page() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return str(r.read().decode())
        except OSError:
            return ""

    try:
        body = wait_until("/metrics", page, 30)
        assert ingest.terminate() == 0
    finally:
        ingest.kill()
    lines = body.splitlines()
    for reason in REJECT_REASONS:
        assert f'homevitals_ingest_rejected_total{{reason="{reason}"}} 0.0' in lines
    from importlib.metadata import version

    assert f'homevitals_build_info{{version="{version("homevitals")}"}} 1.0' in lines
