"""Three RabbitMQ nodes as three hosts: each node in a network namespace of its own, joined to
the test's namespace by a veth pair on a bridge, so that the link between nodes can be cut.

Why not loopback: on one host, every node reaches every other over 127.0.0.1, and a partition
cannot be made. Erlang also connects nodes lazily, so a node that merely had no connection yet
to a peer took itself for a minority and paused (docs/cluster.md). Here each node is alone in
its namespace, with its own epmd on 4369, and a cut is a pair of blackhole routes
(``ip route add blackhole``) in the namespaces on either side: the nodes lose each other, while
the test's clients (gateways, ingest) in the root namespace still reach every node over the
bridge. Healing deletes the routes.

Names and addresses are per run (the PID), so two runs on one machine do not meet: namespaces
``hvp<pid>n<i>``, a /24 of 10.213.0.0/16 picked from the PID, node names ``rabbit@n<i>``
resolved through ``/etc/netns/<ns>/hosts`` (``ip netns exec`` mounts it over /etc/hosts).
Everything is removed again by ``stop``: the processes by PID, then the namespaces, the bridge
and the hosts files. Root is needed (the tests run as root here); a missing ``ip`` is an error
with the install hint, never a skip.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from cluster_servers import (
    PLUGINS,
    RABBIT_SERVER,
    RABBITMQCTL,
    boot_one_by_one,
    serving_unless_boot_failed,
)
from servers import ServerError, _Process, _require

__all__ = ["NetnsRabbitCluster"]

IP = "/usr/sbin/ip"
EPMD_BIN = "/usr/bin/epmd"
AMQP, MQTT, DIST, EPMD = 5672, 1883, 25672, 4369


def _ip(*args: str) -> None:
    done = subprocess.run([IP, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ServerError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


class NsRabbitNode(_Process):
    """One RabbitMQ node (MQTT plugin, quorum-queue sessions) alone in namespace ``ns``."""

    name = "rabbitmq"

    def __init__(self, workdir: Path, index: int, ns: str, addr: str, home: Path,
                 peers: list[str]) -> None:
        super().__init__(workdir)
        self.binary = _require(RABBIT_SERVER, "rabbitmq-server")
        self.index, self.ns, self.addr, self.home = index, ns, addr, home
        self.node = f"rabbit@n{index}"
        self.epmd: subprocess.Popen[bytes] | None = None
        (self.workdir / "enabled_plugins").write_text(f"[{','.join(PLUGINS)}].\n")
        nodes = "".join(f"cluster_formation.classic_config.nodes.{i} = {p}\n"
                        for i, p in enumerate(peers, 1))
        (self.workdir / "rabbitmq.conf").write_text(f"""\
listeners.tcp.default = {addr}:{AMQP}
loopback_users = none
mqtt.listeners.tcp.default = {addr}:{MQTT}
mqtt.allow_anonymous = true
mqtt.vhost = /
mqtt.exchange = amq.topic
mqtt.durable_queue_type = quorum
mqtt.prefetch = 1000
# docs/cluster.md: a node that sees only a minority of the cluster stops serving.
cluster_partition_handling = pause_minority
cluster_formation.peer_discovery_backend = classic_config
{nodes}log.console = true
log.console.level = warning
log.file = false
""", encoding="utf-8")

    def env(self) -> dict[str, str]:
        d = self.workdir
        return {
            **os.environ,
            "HOME": str(self.home),
            "ERL_EPMD_PORT": str(EPMD),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": self.addr,
            "RABBITMQ_NODE_PORT": str(AMQP),
            "RABBITMQ_DIST_PORT": str(DIST),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "pid"),
            "ERL_CRASH_DUMP": str(d / "erl_crash.dump"),  # not in the checkout (the cwd)
            "RABBITMQ_ALLOW_INPUT": "1",  # the script then execs erl: our PID is the node's
            # A lost peer is noticed within 8-10 s instead of Erlang's default 45-75 s.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel net_ticktime 8",
            "RABBITMQ_SERVER_START_ARGS": "-noinput",
        }

    def _in_ns(self, *argv: str) -> list[str]:
        return [IP, "netns", "exec", self.ns, *argv]

    def spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            if self.epmd is None or self.epmd.poll() is not None:
                self.epmd = subprocess.Popen(self._in_ns(EPMD_BIN, "-port", str(EPMD)),
                                             stdout=log, stderr=subprocess.STDOUT)
            self.proc = subprocess.Popen(self._in_ns(self.binary), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.env())

    def serving(self) -> bool:
        """Its MQTT listener answers (a paused node closes it)."""
        return _accepts(self.addr, MQTT)

    def wait_ready(self, timeout: float = 120.0) -> None:
        self._wait_ready(serving_unless_boot_failed(self, self.serving), timeout)

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        try:
            done = subprocess.run(self._in_ns(RABBITMQCTL, "-n", self.node, *args),
                                  env=self.env(), capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:  # a ServerError: the fixture stops the nodes
            raise ServerError(f"rabbitmqctl {' '.join(args)}: no answer in {timeout} s") from exc
        if done.returncode != 0:
            raise ServerError(f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}")
        return done.stdout

    def stop_all(self) -> None:
        self.stop(timeout=30)
        if self.epmd is not None and self.epmd.poll() is None:
            self.epmd.kill()
            self.epmd.wait(10)


class NetnsRabbitCluster:
    """Three nodes, three namespaces, one bridge in the root namespace (the clients' side)."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.workdir = Path(workdir)
        _require(IP, "iproute2")
        tag = f"hvp{os.getpid() % 100000}"
        net = 10 + os.getpid() % 240
        self.prefix = f"10.213.{net}"
        self.bridge = f"{tag}br"
        self.gateway_addr = f"{self.prefix}.254"
        self.namespaces = [f"{tag}n{i}" for i in range(1, size + 1)]
        home = self.workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16))
            cookie.chmod(0o400)
        peers = [f"rabbit@n{i}" for i in range(1, size + 1)]
        self.nodes = [NsRabbitNode(self.workdir / f"rabbit{i}", i, ns, f"{self.prefix}.{i}",
                                   home, peers)
                      for i, ns in enumerate(self.namespaces, 1)]
        self._made: list[str] = []  # what to remove: "ns:<name>", "link:<name>", "etc:<dir>"
        self.cuts: list[tuple[int, int]] = []

    @property
    def mqtt_brokers(self) -> list[str]:
        return [f"{n.addr}:{MQTT}" for n in self.nodes]

    @property
    def amqp_urls(self) -> list[str]:
        return [f"amqp://guest:guest@{n.addr}:{AMQP}/%2F" for n in self.nodes]

    def _network(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        self._made.append(f"link:{self.bridge}")
        _ip("addr", "add", f"{self.gateway_addr}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        hosts = "127.0.0.1 localhost\n" + "".join(
            f"{n.addr} n{n.index}\n" for n in self.nodes)
        for node in self.nodes:
            ns, outside, inside = node.ns, f"{node.ns}o", f"{node.ns}i"
            etc = Path("/etc/netns") / ns
            etc.mkdir(parents=True, exist_ok=True)
            self._made.append(f"etc:{etc}")
            (etc / "hosts").write_text(hosts)
            _ip("netns", "add", ns)
            self._made.append(f"ns:{ns}")
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            self._made.append(f"link:{outside}")
            _ip("link", "set", inside, "netns", ns)
            _ip("link", "set", outside, "master", self.bridge)
            _ip("link", "set", outside, "up")
            _ip("-n", ns, "addr", "add", f"{node.addr}/24", "dev", inside)
            _ip("-n", ns, "link", "set", inside, "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def start(self) -> float:
        started = time.monotonic()
        self._network()
        boot_one_by_one(self.nodes)
        self.wait_clustered()
        return time.monotonic() - started

    def running_nodes(self, i: int) -> set[str]:
        """The nodes node ``i`` sees running (its ``cluster_status``)."""
        out = self.nodes[i].ctl("eval", "rabbit_nodes:all_running().")
        return {n.node for n in self.nodes if re.search(rf"\b{n.node}\b", out)}

    def wait_clustered(self, timeout: float = 180.0) -> None:
        """Every node sees every node running, and every node is a member of the MQTT
        plugin's client-id tracker (as ``RabbitCluster.wait_clustered``)."""
        started = time.monotonic()
        deadline = started + timeout
        want = {n.node for n in self.nodes}
        last, nudged = "", False
        while time.monotonic() < deadline:
            try:
                if all(self.running_nodes(i) == want for i in range(len(self.nodes))):
                    last = self.nodes[0].ctl("eval", "ra:members({mqtt_node, node()}).")
                    flat = last.replace(" ", "").replace("\n", "")
                    missing = [n for n in self.nodes if f"{{mqtt_node,{n.node}}}" not in flat]
                    if not missing:
                        return
                    if not nudged and time.monotonic() - started > 20:
                        for node in missing:  # lost the race to join the tracker: again
                            node.ctl("stop_app")
                            node.ctl("start_app")
                        nudged = True
            except ServerError as exc:
                last = str(exc)
            time.sleep(1.0)  # a poll of the cluster's status until its nodes have joined
        raise ServerError(f"the namespaced RabbitMQ nodes did not form one cluster in"
                          f" {timeout} s: {last}")

    def cut(self, i: int, j: int) -> None:
        """Node i and node j lose each other (both directions); the clients still reach both."""
        a, b = self.nodes[i], self.nodes[j]
        _ip("-n", a.ns, "route", "add", "blackhole", f"{b.addr}/32")
        _ip("-n", b.ns, "route", "add", "blackhole", f"{a.addr}/32")
        self.cuts.append((i, j))

    def heal(self) -> None:
        for i, j in self.cuts:
            a, b = self.nodes[i], self.nodes[j]
            _ip("-n", a.ns, "route", "del", "blackhole", f"{b.addr}/32")
            _ip("-n", b.ns, "route", "del", "blackhole", f"{a.addr}/32")
        self.cuts = []

    def stop(self) -> None:
        for node in self.nodes:
            node.stop_all()
        for item in reversed(self._made):
            kind, _, name = item.partition(":")
            if kind == "ns":
                subprocess.run([IP, "netns", "del", name], check=False, capture_output=True)
            elif kind == "link":
                subprocess.run([IP, "link", "del", name], check=False, capture_output=True)
            else:
                shutil.rmtree(name, ignore_errors=True)
        self._made = []
