"""Alert state in the cluster profile (issue 17, docs/cluster.md "Alert state"): the alert ledger
in PostgreSQL, shared by two alert workers that run active-active.

Real processes throughout: PostgreSQL 15 (and Patroni over etcd with a synchronous replica),
the three-node RabbitMQ cluster of the cluster profile (tests/cluster_servers.py; the module's
last test on it kills a node), two ``homevitals alerts`` daemons, the real twilio client
against the Twilio stand-in. Both workers hear every decision and record it once (the ledger's
keys); a due step is claimed with ``FOR UPDATE SKIP LOCKED``; an SMS is claimed before it is
sent. Each test prints its figures. Intervals are seconds (escalate_after_minutes: 0.05 = 3 s):
these are daemons on the wall clock, as in production.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.publish as mqtt_publish
import pytest
import yaml
from cluster_fixtures import rabbit_cluster  # noqa: F401 - fixture
from cluster_servers import RabbitCluster
from daemons import Daemon, wait_until, write_config
from paho.mqtt.client import MQTTv311
from pg_servers import PatroniCluster, Postgres
from servers import free_port
from sqlalchemy import create_engine, text
from twilio.request_validator import RequestValidator
from twilio_standin import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TwilioStandin

from homevitals.alerts.escalation import Escalator
from homevitals.alerts.ledger import Ledger
from homevitals.vocab import wire
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.config import parse_config
from homevitals.vocab.readings import AlertDecision
from homevitals.vocab.topics import Topics

DOCTOR, BACKUP, MANAGER = "+15550100001", "+15550100002", "+15550100003"
SENDER = "+15550109999"
PUBLIC_URL = "https://alerts.health-centre.example/twilio"
ENV = {"TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN}
# What one unacknowledged episode sends on one node (tests/test_alerts_stories.py): the chain of
# three, then one reminder to each.
SINGLE_NODE = {DOCTOR: 2, BACKUP: 2, MANAGER: 2}


@pytest.fixture
def standin() -> Iterator[TwilioStandin]:
    with TwilioStandin() as s:
        yield s


class Workers:
    """Alert workers sharing one ledger URL, each with its own directory, client id, dead-letter
    file and webhook port, on the RabbitMQ cluster: MQTT 3.1.1, worker k starting at node k of
    the list (docs/cluster.md: give each client the list in another order)."""

    def __init__(self, tmp: Path, brokers: list[str], standin: TwilioStandin, url: str) -> None:
        self.tmp, self.brokers, self.standin, self.url = tmp, brokers, standin, url
        self.daemons: dict[str, Daemon] = {}
        self.webhooks: dict[str, int] = {}

    def _mqtt(self, k: int) -> dict[str, Any]:
        k %= len(self.brokers)
        return {"protocol": "3.1.1", "brokers": self.brokers[k:] + self.brokers[:k]}

    def start(self, name: str) -> Daemon:
        work = self.tmp / name
        work.mkdir(exist_ok=True)
        self.webhooks[name] = free_port()
        data = {
            "mqtt": self._mqtt(len(self.daemons)),
            "homes": [{"id": "home-novak", "timezone": "Europe/Ljubljana", "patients": [{
                "id": "ana", "name": "Ana Novak", "care_team": [
                    {"name": "Dr. Marko Kranjc", "role": "family_doctor", "phone": DOCTOR},
                    {"name": "Dr. Nina Zupan", "role": "backup_doctor", "phone": BACKUP},
                    {"name": "Maja Kos", "role": "health_manager", "phone": MANAGER},
                ]}]}],
            "alerts": {
                "client_id": f"alerts-{name}-{secrets.token_hex(3)}",
                "notifier": "twilio", "ledger_url": self.url,
                "outbox_path": str(work / "dead-letters.sqlite"), "sweep_seconds": 1,
                "twilio": {"from_number": SENDER, "api_base_url": self.standin.base_url,
                           "timeout_seconds": 3},
                "webhook": {"host": "127.0.0.1", "port": self.webhooks[name],
                            "public_url": PUBLIC_URL},
                "routes": [{"chain": ["family_doctor", "backup_doctor", "health_manager"],
                            "escalate_after_minutes": 0.05, "renotify_minutes": 0.05,
                            "max_reminders": 1}],
            },
        }
        config = write_config(work / "homevitals.yaml", data)
        d = Daemon("alerts", config, work, env=ENV)
        self.daemons[name] = d
        d.wait_log("ready: subscribed", 60)
        return d

    def stop(self) -> None:
        for d in self.daemons.values():
            d.kill()

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{d.log()[-3000:]}" for n, d in self.daemons.items())

    def decide(self) -> str:
        aid = "a" + secrets.token_hex(15)
        now = datetime.now(UTC)
        d = AlertDecision(
            alert_id=aid, state="firing", home="home-novak", patient="ana",  # type: ignore[arg-type]
            rule="call-button", severity="critical",  # type: ignore[arg-type]
            reason="Call for help from home", time=now, measurement="event",
            field="call_button", observed_at=now,
        )
        # Through the last node of the list: the tests never kill it.
        host, _, port = self.brokers[-1].rpartition(":")
        mqtt_publish.single(Topics().alert("home-novak", "ana"), wire.encode(d), qos=1,
                            hostname=host, port=int(port), protocol=MQTTv311)
        return aid

    def sms(self, number: str, code: str | None = None) -> list[str]:
        return [m.body or "" for m in self.standin.messages
                if m.to == number and (code is None or f"ACK {code}" in (m.body or ""))]

    def sql(self, q: str, **args: Any) -> list[Any]:
        return sql(self.url, q, **args)

    def ack(self, worker: str, code: str) -> tuple[int, str]:
        params = {"MessageSid": "SM" + secrets.token_hex(16), "From": DOCTOR, "To": SENDER,
                  "Body": f"ACK {code}", "AccountSid": TEST_ACCOUNT_SID}
        sig = RequestValidator(TEST_AUTH_TOKEN).compute_signature(PUBLIC_URL + "/inbound", params)
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.webhooks[worker]}/twilio/inbound",
            data=urllib.parse.urlencode(params).encode(), method="POST",
            headers={"X-Twilio-Signature": sig,
                     "Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()


def sql(url: str, q: str, **args: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return list(c.execute(text(q), args).fetchall())
    finally:
        engine.dispose()


def code_of(body: str) -> str:
    found = re.search(r"Reply ACK (\d+)", body)
    assert found, body
    return found.group(1)


def test_patroni_failover_keeps_a_committed_ack_and_the_escalation_goes_on(
    tmp_path: Path, rabbit_cluster: RabbitCluster, standin: TwilioStandin  # noqa: F811
) -> None:
    cluster = PatroniCluster().start()
    w = Workers(tmp_path, rabbit_cluster.mqtt_brokers, standin, cluster.url)
    try:
        w.start("w1")
        w.start("w2")
        w.decide()
        [first] = wait_until("the first alert's SMS", lambda: w.sms(DOCTOR), 30)
        acked = code_of(first)
        status, reply = w.ack("w1", acked)
        assert status == 200 and "acknowledged" in reply, reply  # committed on both nodes
        w.decide()
        second = wait_until("the second alert's SMS", lambda: [
            b for b in w.sms(DOCTOR) if "Reply ACK" in b and code_of(b) != acked], 30)
        open_code = code_of(second[0])
        old = cluster.primary()
        killed_at = time.monotonic()
        old.kill()  # kill -9 of the primary: Patroni and its PostgreSQL
        during = w.decide()  # a decision while no primary is there: recorded once one is back
        try:
            wait_until("the open alert escalated", lambda: w.sms(BACKUP, open_code), 60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{w.logs()}") from exc
        resumed = time.monotonic() - killed_at
        wait_until("the alert decided during the failover told", lambda: w.sql(
            "SELECT 1 FROM notifications WHERE alert_id=:a AND state='sent'", a=during), 60)
        new = wait_until("a new primary", lambda: next(
            (n for n in cluster.nodes if n is not old and n.role() in ("master", "primary")),
            None), 60)
        rows = w.sql("SELECT acked_by FROM alerts WHERE ack_code=:c", c=acked)
        print(f"\ncluster alerts: primary {old.name} killed; {new.name} primary; escalation"
              f" resumed after {resumed:.1f} s; the ACK before the kill: {rows}; a decision"
              " published right after the kill was told")
        assert rows and rows[0][0] and "Dr. Marko Kranjc" in rows[0][0]
        assert w.sms(BACKUP, acked) == []  # the acknowledged alert never escalates
        assert resumed < 30
    finally:
        w.stop()
        cluster.cleanup()


def test_a_decision_with_no_primary_for_over_30_s_is_held_then_recorded_and_told_once(
    tmp_path: Path, rabbit_cluster: RabbitCluster, standin: TwilioStandin  # noqa: F811
) -> None:
    """Both PostgreSQL nodes down (kill -9) for longer than any failover: each worker holds the
    decision on its own disk and acknowledges the broker; once the nodes are back, the decision
    is recorded once (both workers held it) and its episode sends exactly what one node sends.
    Nothing is dead-lettered."""
    cluster = PatroniCluster().start()
    w = Workers(tmp_path, rabbit_cluster.mqtt_brokers, standin, cluster.url)
    try:
        w.start("w1")
        w.start("w2")
        for node in cluster.nodes:
            node.kill()  # no primary at all
        down_at = time.monotonic()
        aid = w.decide()
        for d in w.daemons.values():
            d.wait_log("held on disk until it is back", 30)
        time.sleep(max(0.0, 32.0 - (time.monotonic() - down_at)))  # the outage lasts 32 s
        assert w.sms(DOCTOR) == []  # nothing can be sent before it is recorded
        for node in cluster.nodes:
            node.start()
        back_at = time.monotonic()
        wait_until("a primary again", lambda: any(
            n.role() in ("master", "primary") for n in cluster.nodes), 90, 0.5)
        primary_after = time.monotonic() - back_at
        try:
            wait_until("the held decision told", lambda: w.sms(DOCTOR), 60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{w.logs()}") from exc
        told_after = time.monotonic() - back_at
        wait_until("the end of the chain", lambda: w.sql(
            "SELECT 1 FROM alerts WHERE alert_id=:a AND next_step_at IS NULL", a=aid) and not
            w.sql("SELECT 1 FROM notifications WHERE state IN ('pending','sending')"), 60)
        counts = Counter(m.to for m in standin.messages)
        rows = w.sql("SELECT COUNT(*) FROM alerts WHERE alert_id=:a", a=aid)
        logs = w.logs()
        print(f"\ncluster alerts: no PostgreSQL primary for {back_at - down_at:.1f} s; the"
              f" decision was held by {len(w.daemons)} workers; a primary {primary_after:.1f} s"
              f" after the nodes were started, the doctor told {told_after:.1f} s after; SMS per"
              f" recipient {dict(counts)} (single node: {SINGLE_NODE})")
        assert rows == [(1,)]
        assert counts == SINGLE_NODE, counts
        assert "dead-lettered" not in logs, logs
        assert back_at - down_at > 30
    finally:
        w.stop()
        cluster.cleanup()


def test_two_workers_one_killed_mid_escalation_send_each_sms_once(
    tmp_path: Path, rabbit_cluster: RabbitCluster, standin: TwilioStandin  # noqa: F811
) -> None:
    """Two alert workers on the three-node RabbitMQ cluster (each MQTT session a quorum queue).
    The worker sending an SMS that Twilio holds is killed (kill -9), and with it the broker node
    of the other worker: the survivor finds the SMS at Twilio (not resent), takes the next
    steps, moves to the next node of its list, resumes its session there and tells the next
    decision; SMS per episode exactly as on one node."""
    pg = Postgres().start()
    w = Workers(tmp_path, rabbit_cluster.mqtt_brokers, standin, pg.url)
    try:
        node_killed: list[float] = []

        def kill_the_survivors_node(victim: str) -> None:
            survivor = next(k for k, n in enumerate(w.daemons) if n != victim)
            rabbit_cluster.kill(survivor)  # worker k starts at node k of the list
            node_killed.append(time.monotonic())

        first = _kill_one_mid_escalation(w, standin, kill_the_survivors_node)
        survivor = next(d for d in w.daemons.values() if d.proc.poll() is None)
        heard_at = time.monotonic()
        second = w.decide()  # through a node still up
        [body] = wait_until("the next decision told", lambda: [
            b for b in w.sms(DOCTOR) if "Reply ACK" in b and code_of(b) != first], 60)
        told = time.monotonic() - heard_at
        rows = w.sql("SELECT COUNT(*) FROM notifications WHERE alert_id=:a AND kind='firing'"
                     " AND recipient=:r", a=second, r=DOCTOR)
        print(f"cluster alerts on RabbitMQ: the survivor's broker node killed too; a decision"
              f" published {heard_at - node_killed[0]:.1f} s after that kill was told"
              f" {told:.1f} s after it was published")
        assert "disconnected from broker" in survivor.log()  # it did lose its node
        assert rows == [(1,)]
        assert len(w.sms(DOCTOR, code_of(body))) == 1
        assert told < 30
    finally:
        w.stop()
        pg.cleanup()


def _kill_one_mid_escalation(
    w: Workers, standin: TwilioStandin, also: Callable[[str], None] | None = None
) -> str:
    """Two workers; the one sending the second step's SMS, held at Twilio, is killed (and
    ``also(its name)`` runs at once). The episode then sends exactly what one node sends,
    within 30 s. Returns the episode's ACK code."""
    w.start("w1")
    w.start("w2")
    aid = w.decide()
    wait_until("the doctor's SMS", lambda: w.sms(DOCTOR), 30)
    # The backup's SMS hangs at Twilio (accepted, not yet answered) ...
    standin.delay_next(4.0)
    [(victim,)] = wait_until("the backup's SMS in flight", lambda: w.sql(
        "SELECT sending_by FROM notifications WHERE recipient=:r AND state='sending'",
        r=BACKUP), 30)
    name = next(n for n, d in w.daemons.items() if victim.startswith(f"alerts-{n}-"))
    killed_at = time.monotonic()
    w.daemons[name].proc.kill()  # ... and the worker sending it dies (SIGKILL)
    if also is not None:
        also(name)
    w.daemons[name].proc.wait(10)
    wait_until("the manager's SMS", lambda: w.sms(MANAGER), 30)
    resumed = time.monotonic() - killed_at
    wait_until("the end of the chain", lambda: w.sql(
        "SELECT 1 FROM alerts WHERE alert_id=:a AND next_step_at IS NULL", a=aid) and not
        w.sql("SELECT 1 FROM notifications WHERE state IN ('pending','sending')"), 60)
    counts = Counter(m.to for m in standin.messages)
    how = w.sql("SELECT entry FROM log WHERE entry LIKE '%found at Twilio%'")
    print(f"\ncluster alerts: worker {name} killed mid-send; escalation resumed after"
          f" {resumed:.1f} s; SMS per recipient {dict(counts)} (single node:"
          f" {SINGLE_NODE}); interrupted SMS found at Twilio, not resent: {len(how)}")
    assert counts == SINGLE_NODE, counts
    assert len(how) == 1, how  # the crash window: Twilio had it, the ledger did not
    assert resumed < 30
    assert standin.violations == []
    [(code,)] = w.sql("SELECT ack_code FROM alerts WHERE alert_id=:a", a=aid)
    return str(code)


def _worker(url: str, clock: SimulatedClock) -> Escalator:
    """One alert worker's decision side, in this process, on the shared ledger."""
    cfg = parse_config(yaml.safe_dump({
        "alerts": {"routes": [{"chain": ["family_doctor", "backup_doctor"],
                               "escalate_after_minutes": 10}]},
        "homes": [{"id": "home-novak", "timezone": "Europe/Ljubljana", "patients": [{
            "id": "ana", "name": "Ana Novak", "care_team": [
                {"name": "Dr. Marko Kranjc", "role": "family_doctor", "phone": DOCTOR},
                {"name": "Dr. Nina Zupan", "role": "backup_doctor", "phone": BACKUP},
            ]}]}]}))
    return Escalator(cfg, Ledger(url), clock)


def test_a_late_ack_cannot_race_a_step_and_a_claimed_step_is_skipped(tmp_path: Path) -> None:
    pg = Postgres().start()
    clock = SimulatedClock(datetime(2026, 11, 21, 2, 0, tzinfo=UTC))
    a, b = _worker(pg.url, clock), _worker(pg.url, clock)
    try:
        d = AlertDecision(
            alert_id="a" + secrets.token_hex(15), state="firing",  # type: ignore[arg-type]
            home="home-novak", patient="ana", rule="call-button",
            severity="critical", reason="Call for help from home",  # type: ignore[arg-type]
            time=clock.now(), measurement="event", field="call_button",
            observed_at=clock.now())
        assert a.on_decision(d) == 1 and b.on_decision(d) == 0  # both heard it: recorded once
        clock.advance(timedelta(minutes=10))
        row = a.ledger.alert(d.alert_id)
        assert row is not None and row.ack_code
        acked: list[object] = []
        with a.ledger.claim(d.alert_id, clock.now()) as claimed:  # worker A takes the step ...
            assert claimed is not None
            t0 = time.monotonic()
            assert b.run_due() == 0  # ... B skips the locked row instead of waiting for it
            skipped = time.monotonic() - t0
            late = threading.Thread(target=lambda: acked.append(
                b.acknowledge(row.ack_code or "", "Dr. Marko Kranjc", "SMS reply", DOCTOR)))
            late.start()  # ... and the doctor's ACK arrives at B meanwhile: it waits
            late.join(1.0)
            assert late.is_alive(), "the ACK did not wait for the step's transaction"
            assert a._advance(claimed, clock.now()) == 1  # the backup's SMS, queued
        late.join(10)
        assert acked and acked[0] is not None
        states = dict(sql(
            pg.url, "SELECT kind, state FROM notifications WHERE alert_id=:a AND recipient=:r",
            a=d.alert_id, r=BACKUP))
        print(f"\ncluster alerts: a locked due step skipped in {skipped * 1000:.0f} ms; the late"
              f" ACK waited for the step, then: {states}")
        assert states == {"escalation-1": "cancelled"}  # queued by the step, never sent
        clock.advance(timedelta(hours=1))
        assert a.run_due() == 0 and b.run_due() == 0  # acknowledged: nothing more is due
    finally:
        a.ledger.close()
        b.ledger.close()
        pg.cleanup()
