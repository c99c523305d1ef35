"""Simulated BLE peripherals for every device type, behind a simulated radio.

``SimulatedRadio`` implements the gateway's ``Radio`` protocol; the gateway's own connection
manager, RACP download and parsers run against it unchanged. ``radio_for_home`` builds one
simulated peripheral per configured device, producing values in real time; ``ScriptedRadio``
serves a household's script of byte-exact values in simulated time (demo, replay).
"""

from __future__ import annotations

from homevitals.simulators.devices.base import (
    Misbehaviour,
    SimAdvert,
    SimulatedPeripheral,
    SimulatedRadio,
    SimulatedSession,
)
from homevitals.simulators.devices.glucose_meter import GlucoseMeter, StoredRecord
from homevitals.simulators.devices.home import radio_for_home
from homevitals.simulators.devices.scripted import ScheduledValue, ScriptedRadio
from homevitals.simulators.devices.streaming import (
    BthomeButton,
    ItagButton,
    StreamingDevice,
    make_streaming,
)

__all__ = [
    "BthomeButton",
    "GlucoseMeter",
    "ItagButton",
    "Misbehaviour",
    "ScheduledValue",
    "ScriptedRadio",
    "SimAdvert",
    "SimulatedPeripheral",
    "SimulatedRadio",
    "SimulatedSession",
    "StoredRecord",
    "StreamingDevice",
    "make_streaming",
    "radio_for_home",
]
