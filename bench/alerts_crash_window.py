"""The crash window of an SMS (issue 17): a worker killed after it asked Twilio and before the
ledger recorded the answer. Does the list-before-resend reconciliation (``find_sent``) cover it?

Each round: two alert workers on a fresh PostgreSQL ledger; an alert; the backup doctor's SMS is
held at the Twilio stand-in for ``hold`` seconds (random, 0.5-4 s) and the worker sending it is
killed (SIGKILL) at a random moment of that hold; the stand-in then takes the message, as Twilio
would for a client that has gone. The figures: per round, whether that SMS reached the backup doctor
exactly once, and how long the surviving worker took to settle it.

    .venv/bin/python bench/alerts_crash_window.py --rounds 5
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from daemons import wait_until  # noqa: E402
from pg_servers import Postgres  # noqa: E402
from servers import Mosquitto  # noqa: E402
from test_cluster_alerts import BACKUP, Workers  # noqa: E402
from twilio_standin import TwilioStandin  # noqa: E402


def one_round(tmp: Path, port: int, rng: random.Random) -> tuple[float, float, int, float]:
    """On a fresh ledger: what an earlier round left due must not take this round's hold."""
    tmp.mkdir(parents=True)
    pg = Postgres().start()
    with TwilioStandin() as standin:
        w = Workers(tmp, port, standin, pg.url)
        try:
            w.start("w1")
            w.start("w2")
            aid = w.decide()
            wait_until("the first SMS", lambda: standin.messages, 30)
            hold = rng.uniform(0.5, 4.0)
            standin.delay_next(hold)
            [(by,)] = wait_until("the backup's SMS in flight", lambda: w.sql(
                "SELECT sending_by FROM notifications WHERE alert_id=:a AND recipient=:r AND"
                " state='sending'", a=aid, r=BACKUP), 30)
            at = rng.uniform(0.0, hold)
            time.sleep(at)
            name = next(n for n in w.daemons if by.startswith(f"alerts-{n}-"))
            killed = time.monotonic()
            w.daemons[name].proc.kill()
            wait_until("the backup's SMS settled", lambda: w.sql(
                "SELECT 1 FROM notifications WHERE alert_id=:a AND recipient=:r AND"
                " state='sent'", a=aid, r=BACKUP), 60)
            settled = time.monotonic() - killed
            time.sleep(1.0)
            got = sum(1 for m in standin.messages  # the escalation SMS, not a later reminder
                      if m.to == BACKUP and (m.body or "").startswith("ESCALATED"))
            return hold, at, got, settled
        finally:
            w.stop()
            pg.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=17)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Mosquitto(tmp / "mosquitto")
        broker.start()
        try:
            print("round  hold_s  killed_at_s  escalation_sms_to_backup  settled_after_s")
            twice = 0
            for i in range(args.rounds):
                hold, at, got, settled = one_round(tmp / f"r{i}", broker.port, rng)
                twice += got != 1
                print(f"{i + 1:>5}  {hold:6.2f}  {at:11.2f}  {got:>24}  {settled:15.1f}")
            print(f"rounds {args.rounds}, SMS to the backup doctor not exactly once: {twice}")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
