"""Real broker clusters for tests and benchmarks: three RabbitMQ nodes, or three NATS servers.

Same rules as servers.py: free 127.0.0.1 ports, every file in a directory of the fixture's own,
started and stopped by PID only, a missing binary is an error with the install hint, never a
skip. ``kill(i)`` is ``kill -9`` of one node; ``start_node(i)`` brings it back on the same ports
and data.

RabbitMQ (docs/cluster.md): each node has its own node name, ports, Mnesia directory and enabled
plugins file; all share one Erlang cookie (``$HOME/.erlang.cookie``) and one epmd, which this
module starts on a port of its own (``ERL_EPMD_PORT``) so that no system-wide epmd is left
behind. The nodes find each other at boot through ``classic_config`` peer discovery, which saves
the three ``rabbitmqctl`` calls per node of a manual ``join_cluster`` (each CLI call starts an
Erlang VM: about 1.5 s on two cores). The server script is run with ``RABBITMQ_ALLOW_INPUT`` so
that it ``exec``s erl: the PID we hold is the node's own (beam.smp), and SIGKILL reaches it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from servers import HOST, ServerError, _accepts, _Process, _require, free_port

__all__ = ["Epmd", "NatsCluster", "RabbitCluster", "RabbitNode", "boot_one_by_one", "wait_booted"]

RABBIT_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
EPMD_BIN = "/usr/bin/epmd"
NATS_BIN = "/usr/sbin/nats-server"
PLUGINS = ("rabbitmq_mqtt", "rabbitmq_consistent_hash_exchange")


class _Booting(Protocol):
    node: str
    log_path: Path

    def spawn(self) -> None: ...
    def wait_ready(self, timeout: float = ...) -> None: ...
    def stop(self, timeout: float = ...) -> None: ...


def serving_unless_boot_failed(node: _Process, serving: Callable[[], bool]) -> Callable[[], bool]:
    """A readiness check that gives up at once on a node whose log, from this wait on, says its
    boot failed (``BOOT FAILED``, or an application that failed to start: a crash report from
    ``application_master:init`` with ``bad_return``): such a node may go on running without ever
    listening, and waiting for it costs the whole timeout. Earlier lines of the log (a node
    brought back after a kill keeps its log) are not read."""
    start = node.log_path.stat().st_size if node.log_path.exists() else 0

    def ready() -> bool:
        if serving():
            return True
        try:
            with open(node.log_path, "rb") as log:
                log.seek(start)
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return False
        if "BOOT FAILED" in text or ("application_master:init" in text and "{bad_return," in text):
            raise ServerError(f"{node.name} failed to boot:\n{text[-4000:]}")
        return False
    return ready


def wait_booted(node: _Booting, timeout: float = 120.0) -> None:
    """Wait for a RabbitMQ node just spawned. A node that does not come up is stopped by its PID
    and started once more on its own data (printed in the test's output, the failed log kept as
    ``rabbitmq.failed-boot``); a second failure is the fixture's error. Seen in CI (stop 24) and
    here: a fresh RabbitMQ 3.10 node whose MQTT plugin timed out electing its client-id tracker
    (``{rabbit_mqtt,start,...}`` ``{nodedown,...}`` ``trigger_election``) stayed up without ever
    listening. Only for the start of a fresh test cluster: a node brought back after a kill
    (``start_node``) gets no second chance, since that is what tests judge."""
    try:
        node.wait_ready(timeout)
    except ServerError as exc:
        node.stop()
        kept = node.log_path.with_suffix(".failed-boot")
        node.log_path.replace(kept)  # the next attempt's log starts clean; this one is kept
        print(f"\n{node.node} did not boot ({str(exc).splitlines()[0]}; log in {kept}),"
              " started again")
        node.spawn()
        try:
            node.wait_ready(timeout)
        except ServerError as again:
            raise ServerError(f"{node.node} did not boot on a second start either:\n{again}"
                              f"\n-- the first start:\n{exc}") from again


def boot_one_by_one(nodes: Sequence[_Booting], timeout: float = 120.0) -> None:
    """Start fresh nodes one after another, each once the one before it serves MQTT, so that
    each joins the cluster and the MQTT client-id tracker of the nodes already up. Nodes booted
    all at once raced: RabbitMQ's own comment in ``mqtt_node:start`` says parallel boot "does
    not guarantee single cluster formation", and a fresh-clone run of ``.ci/run`` (cfee475) saw
    the tracker split, node 1's ``mqtt_node`` outside the Raft cluster of nodes 2 and 3, and
    ``rabbitmqctl start_app`` of the fixture's nudge time out after 60 s."""
    for node in nodes:
        node.spawn()
        wait_booted(node, timeout)


class Epmd(_Process):
    """The Erlang port mapper, in the foreground on a port of its own."""

    name = "epmd"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.binary = _require(EPMD_BIN, "erlang-base")
        self.port = free_port()

    def start(self) -> None:
        self._spawn([self.binary, "-port", str(self.port)])
        self._wait_ready(lambda: _accepts(self.port))


class RabbitNode(_Process):
    """One RabbitMQ node with the MQTT plugin (quorum-queue sessions) and AMQP on loopback."""

    name = "rabbitmq"

    def __init__(self, workdir: Path, index: int, home: Path, epmd_port: int,
                 peers: list[str]) -> None:
        super().__init__(workdir)
        self.binary = _require(RABBIT_SERVER, "rabbitmq-server")
        self.index = index
        self.node = f"rabbit{index}@localhost"
        self.home, self.epmd_port, self.peers = home, epmd_port, peers
        self.conf_path = self.workdir / "rabbitmq.conf"
        self.new_ports()
        (self.workdir / "enabled_plugins").write_text(f"[{','.join(PLUGINS)}].\n")

    def new_ports(self) -> None:
        """Free loopback ports, picked again on a rebuild: a killed node's old port may by then
        be the local end of some client's connection (the kernel's ephemeral range)."""
        self.amqp_port, self.mqtt_port, self.dist_port = free_port(), free_port(), free_port()
        self.conf_path.write_text(self._config(self.peers), encoding="utf-8")

    def _config(self, peers: list[str]) -> str:
        nodes = "".join(
            f"cluster_formation.classic_config.nodes.{i} = {p}\n" for i, p in enumerate(peers, 1)
        )
        return f"""\
listeners.tcp.default = {HOST}:{self.amqp_port}
loopback_users = none
mqtt.listeners.tcp.default = {HOST}:{self.mqtt_port}
mqtt.allow_anonymous = true
mqtt.vhost = /
mqtt.exchange = amq.topic
# Non-clean MQTT sessions are quorum queues: a PUBACK means a majority has the message.
mqtt.durable_queue_type = quorum
mqtt.prefetch = 1000
cluster_formation.peer_discovery_backend = classic_config
{nodes}log.console = true
log.console.level = warning
log.file = false
"""

    def env(self) -> dict[str, str]:
        d = self.workdir
        return {
            **os.environ,
            "HOME": str(self.home),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.conf_path),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "pid"),
            "ERL_CRASH_DUMP": str(d / "erl_crash.dump"),  # not in the checkout (the cwd)
            "RABBITMQ_ALLOW_INPUT": "1",  # the script then execs erl: our PID is the node's
            "RABBITMQ_SERVER_START_ARGS": "-noinput",
        }

    def spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.binary], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env())

    def wait_ready(self, timeout: float = 90.0) -> None:
        self._wait_ready(serving_unless_boot_failed(self, lambda: _accepts(self.mqtt_port)),
                         timeout)

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """``rabbitmqctl -n <this node> ...``; its output, or ServerError (also on a timeout,
        so that a fixture that catches ServerError stops the nodes)."""
        try:
            done = subprocess.run([RABBITMQCTL, "-n", self.node, *args], env=self.env(),
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ServerError(f"rabbitmqctl {' '.join(args)}: no answer in {timeout} s") from exc
        if done.returncode != 0:
            raise ServerError(f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}")
        return done.stdout


class RabbitCluster:
    """Three (``size``) RabbitMQ nodes on one host, clustered at boot."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.workdir = Path(workdir)
        home = self.workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16))
            cookie.chmod(0o400)
        self.epmd = Epmd(self.workdir / "epmd")
        peers = [f"rabbit{i}@localhost" for i in range(1, size + 1)]
        self.nodes = [RabbitNode(self.workdir / f"rabbit{i}", i, home, self.epmd.port, peers)
                      for i in range(1, size + 1)]

    @property
    def mqtt_brokers(self) -> list[str]:
        return [f"{HOST}:{n.mqtt_port}" for n in self.nodes]

    @property
    def amqp_urls(self) -> list[str]:
        return [f"amqp://guest:guest@{HOST}:{n.amqp_port}/%2F" for n in self.nodes]

    def start(self) -> float:
        """Start the nodes one after another (``boot_one_by_one``); the seconds it took."""
        started = time.monotonic()
        if not self.epmd.running:
            self.epmd.start()
        boot_one_by_one(self.nodes, timeout=90.0)
        self.wait_clustered()
        return time.monotonic() - started

    def wait_clustered(self, timeout: float = 180.0) -> None:
        """Every node running in one cluster, and every node a member of the MQTT plugin's
        client-id tracker (the Raft cluster ``mqtt_node``): nodes that boot together can race
        to join it (``cluster_change_not_permitted``) and retry, and a tracker short of a member
        would lose its majority with one node more down, refusing every new MQTT connection."""
        started = time.monotonic()
        deadline = started + timeout
        want = {n.node for n in self.nodes if n.running}
        first = next(n for n in self.nodes if n.running)
        status, nudged = "", False
        while time.monotonic() < deadline:
            status = first.ctl("cluster_status", "--formatter", "json")
            running = status.split('"running_nodes"')[-1]
            if all(f'"{n}"' in running for n in want):
                status = first.ctl("eval", "ra:members({mqtt_node, node()}).")
                flat = status.replace(" ", "").replace("\n", "")
                missing = [n for n in self.nodes
                           if n.running and f"{{mqtt_node,{n.node}}}" not in flat]
                if not missing:
                    return
                if not nudged and time.monotonic() - started > timeout / 3:
                    # Seen on a loaded machine: a node that lost the race never joined the
                    # tracker. Restarting its app makes it try again.
                    for node in missing:
                        node.ctl("stop_app")
                        node.ctl("start_app")
                    nudged = True
            time.sleep(1.0)  # a poll of the cluster's status until its nodes have joined
        raise ServerError(f"RabbitMQ nodes {sorted(want)} did not form one cluster in {timeout} s:"
                          f" {status}")

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def start_node(self, *indices: int) -> None:
        """Bring killed nodes back (together, as after a power cut) on their ports and data."""
        for i in indices:
            self.nodes[i].spawn()
        for i in indices:
            self.nodes[i].wait_ready()
        self.wait_clustered()

    def rebuild(self) -> float:
        """Stop every node, wipe their data and start a new cluster (on new ports): the way
        back after a majority was lost (docs/cluster.md: RabbitMQ 3.10's MQTT plugin did not
        start again on returning nodes then)."""
        self.stop()
        self.epmd.port = free_port()
        for node in self.nodes:
            shutil.rmtree(node.workdir / "mnesia", ignore_errors=True)
            node.epmd_port = self.epmd.port
            node.new_ports()
        return self.start()

    def delete_queues(self, *names: str) -> None:
        for name in names:
            self.nodes[0].ctl("delete_queue", name)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop(timeout=30)
        self.epmd.stop()


class NatsNode(_Process):
    name = "nats"

    def __init__(self, workdir: Path, index: int, cluster_ports: list[int]) -> None:
        super().__init__(workdir)
        self.binary = _require(NATS_BIN, "nats-server")
        self.index = index
        self.port, self.mqtt_port = free_port(), free_port()
        self.cluster_port = cluster_ports[index - 1]
        routes = ", ".join(f'"nats-route://{HOST}:{p}"' for p in cluster_ports
                           if p != self.cluster_port)
        self.conf_path = self.workdir / "nats.conf"
        self.conf_path.write_text(f"""\
server_name: n{index}
listen: {HOST}:{self.port}
jetstream {{ store_dir: "{self.workdir / 'js'}" }}
cluster {{ name: homevitals, listen: {HOST}:{self.cluster_port}, routes: [{routes}] }}
mqtt {{ listen: {HOST}:{self.mqtt_port}, stream_replicas: 3 }}
""", encoding="utf-8")

    def spawn(self) -> None:
        self._spawn([self.binary, "-c", str(self.conf_path)])

    def start(self) -> None:
        self.spawn()
        self._wait_ready(lambda: _accepts(self.mqtt_port), 60)


class NatsCluster:
    """Three NATS servers with JetStream, MQTT sessions replicated on all three (R3)."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        ports = [free_port() for _ in range(size)]
        self.nodes = [NatsNode(Path(workdir) / f"nats{i}", i, ports) for i in range(1, size + 1)]

    @property
    def mqtt_brokers(self) -> list[str]:
        return [f"{HOST}:{n.mqtt_port}" for n in self.nodes]

    def start(self) -> float:
        started = time.monotonic()
        for node in self.nodes:
            node.spawn()
        for node in self.nodes:
            node._wait_ready(lambda n=node: _accepts(n.mqtt_port), 60)  # type: ignore[misc]
        return time.monotonic() - started

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def start_node(self, index: int) -> None:
        self.nodes[index].start()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
