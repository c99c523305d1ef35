"""Who may speak for whom: the topic, bound to a gateway's credential by the broker ACL, is the
authority on which home and device a message comes from, and the configuration says which patient
each device belongs to. A payload never names another home, device or patient than that.

Every server stage checks each message here before it stores anything or runs a rule, so a gateway
(or anyone holding its credential) can neither file readings under another home nor raise an
alert for another home's patient. A failed check is a dead letter with one of these reasons:

==================  ==========================================================================
reason              meaning
==================  ==========================================================================
topic_mismatch      the payload names another home, device or patient than its topic
unknown_home        the topic's home is not in the configuration
unknown_device      the device is not one of that home's devices in the configuration
patient_mismatch    the configuration gives the device (or the home) another patient
wrong_topic         a message of this type does not belong on this topic
==================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from homevitals.vocab.config import HomeConfig
from homevitals.vocab.readings import AlertDecision, Event, GatewayStatus, Reading
from homevitals.vocab.topics import ParsedTopic

__all__ = ["ORIGIN_REASONS", "Mismatch", "Registry"]

ORIGIN_REASONS = (
    "topic_mismatch",
    "unknown_home",
    "unknown_device",
    "patient_mismatch",
    "wrong_topic",
)


class Mismatch(NamedTuple):
    reason: str
    error: str


class Registry:
    """The homes, devices and patients of the configuration, for origin checks."""

    def __init__(self, homes: Iterable[HomeConfig]) -> None:
        homes = list(homes)
        self._device_patient = {(h.id, d.id): d.patient for h in homes for d in h.devices}
        self._home_patients = {h.id: frozenset(p.id for p in h.patients) for h in homes}

    def knows_home(self, home: str) -> bool:
        return home in self._home_patients

    def home_devices(self, home: str) -> set[str]:
        return {d for h, d in self._device_patient if h == home}

    def check(
        self, topic: ParsedTopic | None, msg: Reading | Event | GatewayStatus | AlertDecision
    ) -> Mismatch | None:
        """None when ``msg`` may stand on ``topic``; otherwise the reason and what was wrong."""
        if isinstance(msg, Reading | Event):
            return self._device_message(topic, msg)
        if isinstance(msg, GatewayStatus):
            return self._home_message(topic, "status", msg.home)
        return self._alert(topic, msg)

    def check_home(self, topic: ParsedTopic | None, kind: str, home: str) -> Mismatch | None:
        """A home-level message (status, heartbeat, a gateway's dead letter)."""
        return self._home_message(topic, kind, home)

    def _device_message(self, topic: ParsedTopic | None, msg: Reading | Event) -> Mismatch | None:
        kind = "reading" if isinstance(msg, Reading) else "event"
        if topic is None or topic.kind != kind:
            return Mismatch("wrong_topic", f"a {kind} message on a topic for {_kind(topic)}")
        if msg.home != topic.home or msg.device != topic.leaf:
            return Mismatch(
                "topic_mismatch",
                f"payload names home {msg.home!r} device {msg.device!r} but its topic is"
                f" home {topic.home!r} device {topic.leaf!r}",
            )
        if topic.home not in self._home_patients:
            return Mismatch("unknown_home", f"home {topic.home!r} is not in the configuration")
        patient = self._device_patient.get((topic.home, topic.leaf))
        if patient is None:
            return Mismatch(
                "unknown_device",
                f"device {topic.leaf!r} is not a device of home {topic.home!r} in the"
                " configuration",
            )
        if msg.patient != patient:
            return Mismatch(
                "patient_mismatch",
                f"payload names patient {msg.patient!r} but device {topic.leaf!r} of home"
                f" {topic.home!r} belongs to {patient!r}",
            )
        return None

    def _home_message(self, topic: ParsedTopic | None, kind: str, home: str) -> Mismatch | None:
        if topic is None or topic.kind != kind:
            return Mismatch("wrong_topic", f"a {kind} message on a topic for {_kind(topic)}")
        if home != topic.home:
            return Mismatch(
                "topic_mismatch", f"payload names home {home!r} but its topic is {topic.home!r}"
            )
        if topic.home not in self._home_patients:
            return Mismatch("unknown_home", f"home {topic.home!r} is not in the configuration")
        return None

    def _alert(self, topic: ParsedTopic | None, d: AlertDecision) -> Mismatch | None:
        if topic is None or topic.kind != "alert":
            return Mismatch("wrong_topic", f"an alert decision on a topic for {_kind(topic)}")
        if d.home != topic.home or d.patient != topic.leaf:
            return Mismatch(
                "topic_mismatch",
                f"payload names home {d.home!r} patient {d.patient!r} but its topic is"
                f" home {topic.home!r} patient {topic.leaf!r}",
            )
        patients = self._home_patients.get(topic.home)
        if patients is None:
            return Mismatch("unknown_home", f"home {topic.home!r} is not in the configuration")
        if d.patient not in patients:
            return Mismatch(
                "patient_mismatch",
                f"patient {d.patient!r} is not a patient of home {topic.home!r}",
            )
        return None


def _kind(topic: ParsedTopic | None) -> str:
    return "something else" if topic is None else f"{topic.kind} messages"
