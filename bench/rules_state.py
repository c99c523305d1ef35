"""CPU and wall time per reading of the rule engine on each of its state stores: the gateway's
``DurableQueue`` (raw sqlite3, the rules' store before issue 17), ``RulesStore`` on SQLite (the
embedded default now) and, given ``--pg URL``, ``RulesStore`` on PostgreSQL (the cluster
profile). The shipped rules, one patient, one CGM reading every 5 minutes of simulated time; each
reading is one transaction with its state, due checks and decisions (a commit with
``synchronous=FULL`` on SQLite). Prints the figures; never gates on them.

Run: ``python bench/rules_state.py [--readings 1000] [--pg postgresql+psycopg://...]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from rules_helpers import DEFAULTS, T0, cgm, config  # noqa: E402

from homevitals.infra.outbox import DurableQueue  # noqa: E402
from homevitals.rules.engine import RuleEngine  # noqa: E402
from homevitals.rules.state import DecisionOutbox  # noqa: E402
from homevitals.rules.store import RulesStore  # noqa: E402
from homevitals.vocab.clock import SimulatedClock  # noqa: E402
from homevitals.vocab.topics import Topics  # noqa: E402


def _run(name: str, store: DecisionOutbox, n: int) -> None:
    cfg = config(DEFAULTS)
    clock = SimulatedClock(T0)
    e = RuleEngine(list(cfg.rules.definitions), cfg.homes, store, Topics(), clock)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        t = T0 + timedelta(minutes=5 * i)
        clock.set(t)
        e.on_reading(cgm(t, 6.0 + (i % 7) * 0.3))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{name:<34} {n:>6} readings {cpu / n * 1e6:>8.0f} us CPU {wall / n * 1e6:>8.0f} us wall"
          " per reading")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=1000)
    ap.add_argument("--pg", help="a PostgreSQL URL (its tables are written to)")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # the decisions' log lines
    work = Path(tempfile.mkdtemp(prefix="hv-rules-state-"))
    _run("DurableQueue, sqlite3 (before)", DurableQueue(work / "queue.sqlite"), args.readings)
    _run("RulesStore, SQLite", RulesStore(work / "store.sqlite"), args.readings)
    if args.pg:
        _run("RulesStore, PostgreSQL", RulesStore(args.pg, "bench"), args.readings)


if __name__ == "__main__":
    main()
