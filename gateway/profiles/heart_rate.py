"""Heart Rate Measurement (0x2A37).

HRS 1.0 / GSS "Heart Rate Measurement": flags; heart rate as uint8 or uint16 (flags bit 0);
sensor contact status (bits 1-2: bit 2 "supported", bit 1 "detected"); Energy Expended uint16 kJ
(bit 3); RR-Intervals, uint16 each in 1/1024 s, filling the rest of the value (bit 4).
"""

from __future__ import annotations

from homevitals.gateway.errors import ProfileError
from homevitals.gateway.profiles import plausibility
from homevitals.gateway.profiles.decoded import Decoded, Detail
from homevitals.gateway.profiles.reader import Reader
from homevitals.vocab.readings import FieldValue, Measurement
from homevitals.vocab.units import Unit

__all__ = ["decode_measurement"]

_WHERE = "0x2A37"
_UINT16 = 0x01
_CONTACT_DETECTED = 0x02
_CONTACT_SUPPORTED = 0x04
_ENERGY = 0x08
_RR = 0x10


def decode_measurement(data: bytes) -> Decoded:
    """Heart rate in bpm; no reading when the sensor says it has no skin contact."""
    r = Reader(data, _WHERE)
    r.require(2, "flags, heart rate")
    r.flags = flags = r.uint(1, "the flags", optional=False)
    rate = r.uint(2 if flags & _UINT16 else 1, "the heart rate", optional=False)
    details: dict[str, Detail] = {"flags": f"0x{flags:02X}",
                                  "heart_rate": {"value": rate, "unit": "bpm"}}
    contact: bool | None = None
    if flags & _CONTACT_SUPPORTED:
        contact = bool(flags & _CONTACT_DETECTED)
    details["sensor_contact"] = contact
    fields: dict[str, FieldValue] = {}
    if flags & _ENERGY:
        energy = r.uint(2, "an energy expended")
        details["energy_expended"] = {"value": energy, "unit": "kJ"}
        fields["energy_expended"] = FieldValue(energy, Unit.KJ)
    if flags & _RR:
        if r.pos >= len(data):
            raise ProfileError(f"{_WHERE}: flags 0x{flags:02X} announce RR-intervals but none"
                               f" follow in {len(data)} bytes")
        rr = []
        while r.pos < len(data):
            rr.append(round(r.uint(2, "an RR-interval") * 1000 / 1024, 1))
        details["rr_intervals"] = {"value": tuple(rr), "unit": "ms"}
    if contact is False or rate == 0:
        # HRS 3.1.1.2: without skin contact the value is meaningless; a strap sends 0 or junk.
        details["no_measurement"] = "no skin contact" if contact is False else "heart rate 0"
        return Decoded(characteristic="2A37", details=details)
    fields = {"heart_rate": FieldValue(plausibility.check(_WHERE, "heart_rate", rate, rate,
                                                          "bpm"), Unit.BPM), **fields}
    rest = r.rest()
    if rest:
        details["unparsed"] = rest.hex()
    return Decoded(characteristic="2A37", measurement=Measurement.HEART_RATE, fields=fields,
                   details=details)
