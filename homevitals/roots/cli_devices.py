"""The ``homevitals`` commands about devices, real or simulated: ``gateway``, ``decode``,
``scan``, ``demo`` and ``replay`` (part of the composition root ``cli``).

Each imports what it runs only when it runs, so the Pi never loads server code.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from homevitals.vocab.config import DeviceKind, HomeConfig, Quirk, load_config
from homevitals.vocab.errors import ConfigError, HomevitalsError

__all__ = ["cmd_decode", "cmd_demo", "cmd_gateway", "cmd_replay", "cmd_scan"]


def cmd_gateway(args: argparse.Namespace) -> int:
    from homevitals.gateway.main import run_gateway
    from homevitals.vocab.clock import SimulatedClock, SystemClock

    cfg = load_config(args.config)
    if cfg.gateway is None:
        raise ConfigError(["gateway: section missing (the gateway needs gateway.home)"])
    home = cfg.home(cfg.gateway.home)
    if args.simulate in (None, "devices"):
        _check_addresses(home)
    if args.simulate == "devices":
        from homevitals.simulators.devices import radio_for_home

        run_gateway(cfg, radio_for_home(home, interval=args.sim_interval), SystemClock())
        return 0
    if args.simulate == "demo":
        from datetime import datetime, timedelta

        from homevitals.roots.scripted_gateway import play
        from homevitals.simulators.devices.scripted import ScriptedRadio
        from homevitals.simulators.household import DEMO_START, demo_script

        script, _ = demo_script(home.zone)
        clock = SimulatedClock(
            datetime.combine(DEMO_START, datetime.min.time(), home.zone) + timedelta(hours=11)
        )
        radio = ScriptedRadio(home, clock)
        run_gateway(cfg, radio, clock, driver=lambda app: play(app, radio, clock, script))
        return 0
    if args.simulate:
        raise ConfigError([f"--simulate: unknown household {args.simulate!r}"
                           " (known: demo, devices)"])
    from homevitals.gateway.bleak_transport import BleakRadio

    # The pairing agent confirms pairing for these addresses only (gateway/bluez_agent.py).
    addresses = [d.address for d in home.devices if d.address]
    run_gateway(cfg, BleakRadio(pair_with=addresses), SystemClock())
    return 0


def _check_addresses(home: HomeConfig) -> None:
    """The radio finds a device by its BLE address: one without it would be silently idle."""
    lacking = [d.id for d in home.devices if d.address is None and d.kind != DeviceKind.GPIO_BUTTON]
    if lacking:
        many = len(lacking) > 1
        raise ConfigError([
            f"home {home.id}: device{'s' if many else ''} {', '.join(lacking)}"
            f" ha{'ve' if many else 's'} no address: the gateway finds a device by its BLE"
            f" address; add address: \"AA:BB:CC:DD:EE:FF\" to {'each' if many else 'it'}"
            " (`homevitals scan` lists the addresses nearby)"])


def cmd_demo(args: argparse.Namespace) -> int:
    from homevitals.roots.demo import run_demo

    return run_demo(Path(args.workdir) if args.workdir else None, args.broker)


def cmd_replay(args: argparse.Namespace) -> int:
    from homevitals.roots.replay import run_replay

    return run_replay(args.scenario, Path(args.out), seed=args.seed, broker=args.broker,
                      workdir=Path(args.workdir) if args.workdir else None)


def cmd_decode(args: argparse.Namespace) -> int:
    from homevitals.gateway.profiles import decode

    try:
        data = bytes.fromhex(args.hex.replace(" ", "").replace(":", ""))
    except ValueError:
        raise HomevitalsError(f"{args.hex!r} is not hexadecimal bytes") from None
    known = [str(q) for q in Quirk]
    unknown = [q for q in args.quirk or () if q not in known]
    if unknown:
        raise ConfigError([f"--quirk: unknown quirk {', '.join(map(repr, unknown))}"
                           f" (known: {', '.join(known)})"])
    decoded = decode(args.characteristic, data, args.quirk or ())
    print(json.dumps(decoded.to_json(), indent=2, ensure_ascii=False))
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    import asyncio

    from homevitals.gateway.scan import bleak_adverts, describe, radio_adverts

    if args.simulate:
        from homevitals.simulators.devices import radio_for_home

        cfg = load_config(args.simulate)
        radio = radio_for_home(cfg.homes[0]) if cfg.homes else None
        if radio is None:
            raise ConfigError([f"{args.simulate}: no homes to simulate"])
        adverts = asyncio.run(radio_adverts(radio, args.seconds))
    else:
        adverts = asyncio.run(bleak_adverts(args.seconds))
    print(describe(adverts), end="")
    return 0
