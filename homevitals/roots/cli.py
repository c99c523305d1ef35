"""The ``homevitals`` command: one entry point per daemon, plus the tools around them.

This is the composition root (with ``cli_devices``, the commands about devices, and ``demo`` and
``replay``): it imports each stage only when its subcommand runs, so the Pi never loads server
code.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from homevitals.roots.cli_devices import cmd_decode, cmd_demo, cmd_gateway, cmd_replay, cmd_scan
from homevitals.vocab.config import Config, load_config, read_secret
from homevitals.vocab.errors import ConfigError, HomevitalsError

__all__ = ["main"]

logger = logging.getLogger("homevitals")

DESCRIPTION = """\
Home health monitoring: BLE health devices in a home -> MQTT -> InfluxDB -> rules -> SMS.
Start with `homevitals demo`; validate a configuration with `homevitals check-config FILE`.
The gateway runs on the home's Raspberry Pi; ingest, rules and alerts run on the server."""

# The extra that brings each optional third-party module (pyproject.toml).
_EXTRA_OF_MODULE = {
    "bleak": "gateway", "gpiozero": "gateway", "dbus_fast": "gateway",
    "influxdb_client": "server", "twilio": "server", "sqlalchemy": "server",
    "pandas": "server", "numpy": "server", "matplotlib": "server", "urllib3": "server",
    "amqtt": "demo", "pika": "cluster", "psycopg": "cluster",
}
# What each command needs beyond the base install, to name in one pip command.
_EXTRAS_OF_COMMAND = {"demo": "server,demo", "replay": "server,demo"}
# Commands that tell a story on stdout: their INFO logs would drown it.
_QUIET_COMMANDS = {"demo", "replay", "report", "scan", "decode", "check-config", "mqtt-acl"}


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("paho").setLevel(logging.WARNING)
    logging.getLogger("amqtt").setLevel(logging.ERROR)
    logging.getLogger("transitions").setLevel(logging.ERROR)


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = _config(args)
    rules = len(cfg.rules.definitions)
    patients = sum(len(h.patients) for h in cfg.homes)
    devices = sum(len(h.devices) for h in cfg.homes)
    counts = f"{len(cfg.homes)} homes, {patients} patients, {devices} devices, {rules} rules"
    print(f"{args.config}: OK ({counts})")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from homevitals.ingest.main import run_ingest

    run_ingest(_config(args))
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    from homevitals.rules.main import run_rules

    run_rules(_config(args))
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if args.action == "history":
        from homevitals.alerts.ledger import Ledger, format_history

        if args.patient is not None:
            _known_patient(cfg, args.patient)
        ledger = Ledger(cfg.alerts.ledger_url or cfg.alerts.outbox_path)
        print(format_history(ledger.history(args.patient)))
        return 0
    if args.action == "ack":
        return _alerts_ack(cfg, args)
    from homevitals.alerts.main import run_alerts
    from homevitals.vocab.clock import daemon_clock

    token = _twilio_token(cfg) if cfg.alerts.webhook is not None else None
    run_alerts(cfg, _notifier(cfg), daemon_clock(), auth_token=token)
    return 0


def _known_patient(cfg: Config, patient: str) -> None:
    try:
        cfg.patient(patient)
    except KeyError:
        known = ", ".join(p.id for h in cfg.homes for p in h.patients) or "none"
        raise ConfigError([f"--patient: unknown patient {patient!r} (configured: {known})"]
                          ) from None


def _alerts_ack(cfg: Config, args: argparse.Namespace) -> int:
    """`homevitals alerts ack CODE`: acknowledge from the health centre's own terminal."""
    import getpass

    from homevitals.alerts.escalation import Escalator
    from homevitals.alerts.ledger import Ledger
    from homevitals.vocab.clock import SystemClock

    if not args.code:
        raise ConfigError([
            "alerts ack: which alert? Give the code the SMS names (\"reply ACK 4821\"):"
            f" homevitals alerts -c {args.config} ack 4821"])
    if not args.code.isdigit():
        raise ConfigError([f"alerts ack: an alert's code is digits, e.g. 4821 (got {args.code!r})"])
    ledger = Ledger(cfg.alerts.ledger_url or cfg.alerts.outbox_path)
    by = args.by or getpass.getuser()
    row = Escalator(cfg, ledger, SystemClock()).acknowledge(args.code, by, "the command line")
    ledger.close()
    if row is None:
        raise HomevitalsError(f"no open alert has the code {args.code}")
    print(f"acknowledged alert {row.alert_id[:8]} ({row.rule}, {row.patient}) by {by}")
    return 0


def _twilio_token(cfg: Config) -> str | None:
    t = cfg.alerts.twilio
    if t is None:
        return None
    return read_secret(
        t.auth_token_env if not t.auth_token_file else None,
        t.auth_token_file,
        "alerts.twilio.auth_token",
    )


def _notifier(cfg: Config):  # type: ignore[no-untyped-def]
    from homevitals.alerts.notifier import ConsoleNotifier

    if cfg.alerts.notifier == "console":
        return ConsoleNotifier()
    from homevitals.alerts.twilio_notifier import TwilioNotifier

    t = cfg.alerts.twilio
    assert t is not None  # the config check requires it for notifier: twilio
    sid = read_secret(t.account_sid_env, None, "alerts.twilio.account_sid")
    token = read_secret(
        t.auth_token_env if not t.auth_token_file else None,
        t.auth_token_file,
        "alerts.twilio.auth_token",
    )
    assert (
        sid is not None and token is not None
    )  # read_secret raises when a named source is missing
    return TwilioNotifier(
        sid,
        token,
        from_number=t.from_number,
        messaging_service_sid=t.messaging_service_sid,
        status_callback=t.status_callback,
        api_base_url=t.api_base_url,
        timeout=t.timeout_seconds,
    )


def cmd_mqtt_acl(args: argparse.Namespace) -> int:
    from homevitals.infra.acl import mosquitto_acl

    print(mosquitto_acl(_config(args)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from homevitals.alerts.ledger import Ledger
    from homevitals.ingest.main import build_store
    from homevitals.reports.main import check_store, parse_date, run_all, run_report
    from homevitals.roots.alert_readings import history_with_readings

    cfg = _config(args)
    first, last = parse_date(args.start, "--from"), parse_date(args.end, "--to")
    ledger_path = Path(cfg.alerts.outbox_path)

    def history(patient: str) -> list[dict[str, object]] | None:
        if not ledger_path.is_file():  # Ledger() would create an empty one: a report never writes
            return None
        ledger = Ledger(ledger_path)
        try:
            return history_with_readings(ledger, patient)
        finally:
            ledger.close()

    check_store(cfg.store)
    store = build_store(cfg.store)
    try:
        if args.all:
            pages = run_all(cfg, first, last, Path(args.out), store=store, history=history)
        else:
            pages = [run_report(cfg, args.patient, first, last, Path(args.out), store=store,
                                history=history)]
    finally:
        store.close()
    for page in pages:
        print(page)
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    """The care team's web console (issue 15); ``adduser`` creates an account."""
    from homevitals.ingest.main import build_store
    from homevitals.roots.console_wiring import add_account, run_console
    from homevitals.vocab.clock import SystemClock, daemon_clock

    cfg = _config(args)
    if args.action == "adduser":
        if not (args.username and args.name):
            raise HomevitalsError("console adduser: give --username and --name")
        source = open(args.password_file, encoding="utf-8") if args.password_file else sys.stdin
        with source:  # a file or stdin, never argv: argv is visible to every local user
            password = source.readline().rstrip("\r\n")
        add_account(cfg, SystemClock(), args.username, args.name, args.role, args.phone, password)
        print(f"account {args.username} ({args.role}) created")
        return 0
    store = build_store(cfg.store)
    try:
        run_console(cfg, store, daemon_clock())
    finally:
        store.close()
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="homevitals", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="default: INFO for the daemons, WARNING for the tools and the demo")
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("-c", "--config", required=True, help="YAML configuration file")
        return sp

    sp = with_config("gateway", "run the gateway daemon (Raspberry Pi)")
    sp.add_argument("--simulate", metavar="HOUSEHOLD",
                    help="use simulated devices: 'demo' (a scripted day) or 'devices' (one"
                         " simulated peripheral per configured device, in real time)")
    sp.add_argument("--sim-interval", type=float, default=1.0, metavar="SECONDS",
                    help="with --simulate devices: seconds between values of each device")
    sp.set_defaults(func=cmd_gateway)
    with_config("ingest", "run the ingest daemon (MQTT -> InfluxDB)").set_defaults(func=cmd_ingest)
    with_config("rules", "run the rule engine daemon").set_defaults(func=cmd_rules)
    sp = with_config("alerts", "run the alert daemon, print the alert history, acknowledge")
    sp.add_argument("action", nargs="?", default="run", choices=["run", "history", "ack"])
    sp.add_argument("code", nargs="?", help="with ack: the alert's code (the SMS says ACK 4821)")
    sp.add_argument("--patient", help="history of one patient")
    sp.add_argument("--by", help="with ack: who acknowledges (default: the login name)")
    sp.set_defaults(func=cmd_alerts)
    sp = sub.add_parser("check-config", help="validate a configuration file")
    sp.add_argument("config")
    sp.set_defaults(func=cmd_check_config)
    sp = sub.add_parser("demo", help="a simulated household through the whole pipeline")
    sp.add_argument(
        "--workdir", help="keep the demo's databases here (default: a temporary folder)"
    )
    sp.add_argument("--broker", default="auto", choices=["auto", "mosquitto", "amqtt"])
    sp.set_defaults(func=cmd_demo)
    sp = sub.add_parser("replay", help="a scenario through the whole pipeline in simulated time")
    sp.add_argument("scenario", help="scenario file, or the name of a shipped one (night-low)")
    sp.add_argument("--out", required=True, metavar="DIR",
                    help="write notifications.jsonl, alerts.jsonl, readings.csv here")
    sp.add_argument("--seed", type=int, help="override the scenario's seed")
    sp.add_argument("--broker", default="auto", choices=["auto", "mosquitto", "amqtt"])
    sp.add_argument("--workdir", help="keep the replay's databases here (default: temporary)")
    sp.set_defaults(func=cmd_replay)
    with_config("mqtt-acl", "print a Mosquitto ACL file for the configured homes").set_defaults(
        func=cmd_mqtt_acl
    )
    sp = sub.add_parser("decode", help="decode one characteristic value, e.g. 2A35 HEX")
    sp.add_argument("characteristic", help="16-bit or full UUID (2A35, 0x2a35, ...) or bthome")
    sp.add_argument("hex")
    sp.add_argument("--quirk", action="append", metavar="NAME",
                    help="apply a named vendor quirk (docs/gateway.md), repeatable")
    sp.set_defaults(func=cmd_decode)
    sp = sub.add_parser("scan", help="list nearby health devices as config lines")
    sp.add_argument("--seconds", type=float, default=10.0)
    sp.add_argument("--simulate", metavar="CONFIG",
                    help="scan the simulated devices of this config's first home instead")
    sp.set_defaults(func=cmd_scan)
    sp = with_config("report", "write an HTML report with figures for a period (doctor's view)")
    who = sp.add_mutually_exclusive_group(required=True)
    who.add_argument("--patient", help="patient id from the configuration")
    who.add_argument("--all", action="store_true", help="one report per configured patient")
    sp.add_argument("--from", dest="start", required=True, metavar="DATE",
                    help="first local date, e.g. 2026-11-01 (home's time zone)")
    sp.add_argument("--to", dest="end", required=True, metavar="DATE",
                    help="last local date, inclusive")
    sp.add_argument("--out", required=True, metavar="DIR", help="folder for the HTML and PNGs")
    sp.set_defaults(func=cmd_report)
    sp = with_config("console", "serve the care team's web console; adduser: create an account")
    sp.add_argument("action", nargs="?", default="run", choices=["run", "adduser"])
    sp.add_argument("--username")
    sp.add_argument("--name", help="with adduser: the name shown on pages")
    sp.add_argument("--role", default="doctor", choices=["doctor", "health_manager", "admin"])
    sp.add_argument("--phone", help="with adduser: the phone the care_team lists for this person")
    sp.add_argument("--password-file", help="with adduser: read the password from this file"
                    " (default: the first line of stdin)")
    sp.set_defaults(func=cmd_console)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = args.log_level or ("WARNING" if args.command in _QUIET_COMMANDS else "INFO")
    _setup_logging(level, args.log_format)
    try:
        return int(args.func(args))
    except ImportError as exc:  # ModuleNotFoundError, or a library's own ImportError about it
        return _missing_extra(args.command, exc)
    except BaseExceptionGroup as group:  # a daemon's task group: show what failed, not a trace
        matched, _ = group.split(HomevitalsError)
        if matched is None:
            raise
        for leaf in _leaves(matched):
            print(f"error: {leaf}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except HomevitalsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return out


def _missing_module(exc: BaseException | None) -> str | None:
    """The missing top-level module behind ``exc`` (APScheduler wraps SQLAlchemy's)."""
    while exc is not None:
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            return exc.name.split(".")[0]
        exc = exc.__cause__ or exc.__context__
    return None


def _missing_extra(command: str, exc: ImportError) -> int:
    """``pip install homevitals`` without the extra a command needs: say which one."""
    module = _missing_module(exc) or ""
    extra = _EXTRA_OF_MODULE.get(module)
    if extra is None:
        raise exc
    extras = _EXTRAS_OF_COMMAND.get(command, extra)
    print(f"error: homevitals {command} needs {module}, which comes with the '{extra}' extra;"
          f" install it with: pip install 'homevitals[{extras}]'", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
