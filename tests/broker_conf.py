"""The broker configuration homevitals ships (configs/mosquitto/homevitals.conf), made ready for a
test broker: every line as shipped except the listeners' ports, the files' paths and log_dest."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BROKER_CONF", "render_broker_conf"]

BROKER_CONF = Path(__file__).resolve().parent.parent / "configs" / "mosquitto" / "homevitals.conf"
HOST = "127.0.0.1"


def render_broker_conf(
    text: str,
    *,
    port: int,
    tls_port: int | None,
    persistence_location: str,
    password_file: Path | None,
    acl_file: Path | None,
    tls_files: tuple[Path, Path, Path] | None,
    overrides: dict[str, str],
) -> str:
    """The shipped broker configuration with the test's ports and paths. Every other line is
    kept as it is; a setting named in ``overrides`` must be in the file."""
    ca, cert, key = tls_files or (None, None, None)
    replaced: dict[str, object] = {
        "persistence_location": persistence_location,
        "allow_anonymous": "false" if password_file else "true",
        "password_file": password_file,
        "acl_file": acl_file if password_file else None,
        "cafile": ca,
        "certfile": cert,
        "keyfile": key,
        "log_dest": "stderr",
        **overrides,
    }
    missing = set(overrides) - {ln.split(" ", 1)[0] for ln in text.splitlines()}
    if missing:
        raise ValueError(f"{BROKER_CONF} has no setting {', '.join(sorted(missing))}")
    out = ["user root"] if os.geteuid() == 0 else []  # else Mosquitto 2.x drops to mosquitto
    listeners = 0
    for line in text.splitlines():
        key = line.split(" ", 1)[0]
        if key == "listener":
            listeners += 1
            if listeners > 2 or (listeners == 2 and tls_port is None):
                break  # the TLS listener and its settings are last in the file
            line = f"listener {port if listeners == 1 else tls_port} {HOST}"
        elif key in replaced and not line.startswith("#"):
            value = replaced[key]
            if value is None:
                continue
            line = f"{key} {value}"
        out.append(line)
    if listeners == 0:
        raise ValueError(f"{BROKER_CONF} has no listener")
    return "\n".join(out) + "\n"
