"""MQTT topic layout (wire version 1).

Everything a home publishes lives under ``{prefix}/v1/home/{home}/``, so a broker ACL can confine
each gateway to its own subtree (``pattern write {prefix}/v1/home/%u/#``).

=============================================  ========  ========  ===========================
topic                                          QoS       retained  payload
=============================================  ========  ========  ===========================
{prefix}/v1/home/{home}/reading/{device}       1         no        reading
{prefix}/v1/home/{home}/event/{device}         1         no        event (call button)
{prefix}/v1/home/{home}/status                 1         yes       status (also the last will)
{prefix}/v1/home/{home}/heartbeat              0         no        heartbeat
{prefix}/v1/home/{home}/deadletter/{reason}    1         no        value the gateway rejected
{prefix}/v1/alert/{home}/{patient}             1         no        alert decision (rules)
{prefix}/v1/deadletter/{stage}/{reason}        1         no        message a server stage rejected
{ha}/sensor/homevitals_{home}/{object}/config  1         yes       Home Assistant discovery
=============================================  ========  ========  ===========================

What each daemon subscribes to and publishes is listed here too (``ingest_subscriptions``,
``gateway_publications`` ...): the daemons subscribe from these lists and the broker ACL
(homevitals.infra.acl) is generated from them, so the two cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from homevitals.vocab.readings import check_id

__all__ = [
    "BROKER_DROPPED",
    "BROKER_STORED",
    "DEFAULT_PREFIX",
    "HA_DISCOVERY_PREFIX",
    "STAGES",
    "ParsedTopic",
    "Topics",
    "ha_discovery",
    "ha_node",
]

DEFAULT_PREFIX = "homevitals"
HA_DISCOVERY_PREFIX = "homeassistant"
STAGES = ("ingest", "rules", "alerts")
# Mosquitto's own counters (mosquitto(8), "BROKER STATUS"), sent every sys_interval seconds:
# messages dropped because a client's queue was full, and messages held in the broker's store.
BROKER_DROPPED = "$SYS/broker/publish/messages/dropped"
BROKER_STORED = "$SYS/broker/store/messages/count"
_HA_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def ha_node(home: str) -> str:
    """The Home Assistant discovery node id of a home (letters, digits, '_' and '-' only)."""
    return _HA_UNSAFE.sub("_", f"homevitals_{check_id('home', home)}")


def ha_discovery(prefix: str, home: str, object_id: str = "+", component: str = "+") -> str:
    """home-assistant.io/integrations/mqtt, "Discovery topic":
    ``<discovery_prefix>/<component>/[<node_id>/]<object_id>/config``; "+" for the ACL."""
    return f"{prefix}/{component}/{ha_node(home)}/{object_id}/config"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    kind: str  # reading | event | status | heartbeat | deadletter | alert | server_deadletter
    home: str
    leaf: str = ""  # device id (reading, event), patient id (alert) or stage (server_deadletter)


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in "+#") or self.prefix.endswith("/"):
            raise ValueError(
                f"topic prefix {self.prefix!r} must be non-empty, without + # or a trailing /"
            )

    @property
    def base(self) -> str:
        return f"{self.prefix}/v1"

    def home(self, home: str) -> str:
        return f"{self.base}/home/{check_id('home', home)}"

    def reading(self, home: str, device: str) -> str:
        return f"{self.home(home)}/reading/{check_id('device', device)}"

    def event(self, home: str, device: str) -> str:
        return f"{self.home(home)}/event/{check_id('device', device)}"

    def status(self, home: str) -> str:
        return f"{self.home(home)}/status"

    def heartbeat(self, home: str) -> str:
        return f"{self.home(home)}/heartbeat"

    def gateway_deadletter(self, home: str, reason: str) -> str:
        """Inside the home's own subtree, so the broker ACL that confines a gateway allows it."""
        return f"{self.home(home)}/deadletter/{reason}"

    def alert(self, home: str, patient: str) -> str:
        return f"{self.base}/alert/{check_id('home', home)}/{check_id('patient', patient)}"

    def deadletter(self, stage: str, reason: str) -> str:
        return f"{self.base}/deadletter/{stage}/{reason}"

    # Subscriptions (wildcards)
    @property
    def all_readings(self) -> str:
        return f"{self.base}/home/+/reading/+"

    @property
    def all_events(self) -> str:
        return f"{self.base}/home/+/event/+"

    @property
    def all_status(self) -> str:
        return f"{self.base}/home/+/status"

    @property
    def all_heartbeats(self) -> str:
        return f"{self.base}/home/+/heartbeat"

    @property
    def all_gateway_deadletters(self) -> str:
        return f"{self.base}/home/+/deadletter/+"

    def stage_deadletters(self, stage: str) -> str:
        """What one server stage rejected (rules and alerts publish theirs; ingest stores them)."""
        return f"{self.base}/deadletter/{stage}/+"

    @property
    def all_alerts(self) -> str:
        return f"{self.base}/alert/+/+"

    # What each daemon subscribes to and publishes (the ACL is made from these).
    @property
    def ingest_subscriptions(self) -> tuple[str, ...]:
        return (self.all_readings, self.all_events, self.all_gateway_deadletters, self.all_alerts,
                self.stage_deadletters("rules"), self.stage_deadletters("alerts"))

    @property
    def rules_subscriptions(self) -> tuple[str, ...]:
        return (self.all_readings, self.all_events, self.all_status, self.all_heartbeats)

    @property
    def alerts_subscriptions(self) -> tuple[str, ...]:
        return (self.all_alerts,)

    def gateway_publications(self, home: str) -> tuple[str, ...]:
        h = self.home(home)
        return (f"{h}/reading/+", f"{h}/event/+", self.status(home), self.heartbeat(home),
                f"{h}/deadletter/+")

    def parse(self, topic: str) -> ParsedTopic | None:
        """Split a topic of this layout; None when it is not one of ours."""
        head = self.base + "/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        leaf_kinds = ("reading", "event", "deadletter")
        if parts[0] == "home" and len(parts) == 4 and parts[2] in leaf_kinds:
            return ParsedTopic(parts[2], parts[1], parts[3])
        if parts[0] == "home" and len(parts) == 3 and parts[2] in ("status", "heartbeat"):
            return ParsedTopic(parts[2], parts[1])
        if parts[0] == "alert" and len(parts) == 3:
            return ParsedTopic("alert", parts[1], parts[2])
        if parts[0] == "deadletter" and len(parts) == 3:
            return ParsedTopic("server_deadletter", "", parts[1])
        return None
