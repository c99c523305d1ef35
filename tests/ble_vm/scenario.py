"""What the virtual devices hold and send, shared by the guest (which serves it over BLE) and the
host test (which checks what reached MQTT). Every value is built with the simulators' byte-exact
encoders (``homevitals.simulators.ble_values``), so the bytes on the virtual air are the
simulators' bytes; the glucose meter's memory is five days of a virtual patient's finger-stick
checks (``homevitals.simulators.patients``, seeded), night-time low included, so a simulated
patient is served over real BLE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from homevitals.simulators.ble_values import (
    encode_bp_measurement,
    encode_bthome_button,
    encode_glucose_context,
    encode_glucose_measurement,
)
from homevitals.simulators.patients import (
    GlucoseCurve,
    GlucoseProfile,
    Low,
    MeterProfile,
    meter_samples,
)

HOME, PATIENT, ZONE = "vmhome", "vmpatient", "Europe/Ljubljana"

# Random static addresses (two top bits set): BlueZ keeps no cache across boots of the snapshot
# image, and a static address never changes while advertising.
BP_ADDRESS = "F1:00:00:00:00:01"
GLUCOSE_ADDRESS = "F1:00:00:00:00:02"
BUTTON_ADDRESS = "F1:00:00:00:00:03"
BONDED_BP_ADDRESS = "F1:00:00:00:00:04"
DECOY_ADDRESS = "F1:00:00:00:00:09"  # a second BP monitor in range, not configured

BP_READINGS = (
    encode_bp_measurement(142, 91, 108, timestamp=datetime(2024, 3, 1, 8, 0), pulse=77),
    encode_bp_measurement(128, 84, 99, timestamp=datetime(2024, 3, 1, 8, 5), pulse=70),
)
BONDED_BP_READING = encode_bp_measurement(
    135, 88, 104, timestamp=datetime(2024, 3, 1, 9, 0), pulse=66, user_id=1
)
DECOY_READING = encode_bp_measurement(199, 120, 146, pulse=130)

GLUCOSE_RECORDS = 20
SAVED_SEQUENCE = 12  # what the gateway remembers from an earlier visit
DROP_AFTER = 3  # the meter drops the link after this many records of the first transfer
BUTTON_PRESSES = ((40, "press"), (41, "long_press"))


@dataclass(frozen=True)
class GlucoseRecord:
    sequence: int
    device_time: datetime  # the meter's local time, as it stores it (no zone)
    mmol_l: float
    measurement: bytes
    context: bytes | None


PATIENT_SEED = 7
MEMORY_START = datetime(2024, 2, 26, tzinfo=ZoneInfo(ZONE))
NIGHT_LOW = Low(datetime(2024, 2, 29, 22, 0, tzinfo=ZoneInfo(ZONE)), nadir=3.4)


def glucose_records() -> list[GlucoseRecord]:
    """The meter's memory: the virtual patient's checks over five days (four a day), numbered
    1..20 as the meter stored them; every fifth with a meal context."""
    zone = ZoneInfo(ZONE)
    end = MEMORY_START + timedelta(days=5)
    curve = GlucoseCurve(GlucoseProfile(lows=(NIGHT_LOW,)), zone, MEMORY_START, end,
                         PATIENT_SEED, PATIENT)
    samples = meter_samples(curve, MeterProfile(), MEMORY_START, end, PATIENT_SEED, PATIENT)
    assert len(samples) == GLUCOSE_RECORDS, len(samples)
    out = []
    for seq, sample in enumerate(samples, start=1):
        at = sample.at.astimezone(zone).replace(tzinfo=None)
        mmol = sample.values["glucose"]
        with_context = seq % 5 == 0
        out.append(GlucoseRecord(
            sequence=seq,
            device_time=at,
            mmol_l=mmol,
            measurement=encode_glucose_measurement(
                seq, at, mmol, time_offset_min=0, context_follows=with_context
            ),
            context=encode_glucose_context(seq, meal="preprandial") if with_context else None,
        ))
    return out


def button_adverts() -> list[bytes]:
    return [encode_bthome_button(pid, event, battery=87) for pid, event in BUTTON_PRESSES]


def gateway_config(broker_host: str, broker_port: int, queue_path: str) -> str:
    """The gateway's YAML config inside the guest: the bleak transport, devices by address
    (bp2's in lower case: the pairing agent must match BlueZ's upper-case device paths)."""
    bonded = BONDED_BP_ADDRESS.lower()
    return f"""\
mqtt: {{host: "{broker_host}", port: {broker_port}, keepalive: 30}}
homes:
  - id: {HOME}
    timezone: {ZONE}
    patients:
      - id: {PATIENT}
        name: VM Patient
        care_team: [{{name: Dr VM, role: family_doctor, phone: "+38640000001"}}]
    devices:
      - {{id: bp1, kind: blood_pressure, patient: {PATIENT}, address: "{BP_ADDRESS}"}}
      - {{id: bp2, kind: blood_pressure, patient: {PATIENT}, address: "{bonded}"}}
      - {{id: gluco1, kind: glucose_meter, patient: {PATIENT}, address: "{GLUCOSE_ADDRESS}"}}
      - {{id: button1, kind: call_button, patient: {PATIENT}, address: "{BUTTON_ADDRESS}"}}
gateway:
  home: {HOME}
  transport: bleak
  queue_path: {queue_path}
  heartbeat_seconds: 5
  client_id: vm-gateway
"""
