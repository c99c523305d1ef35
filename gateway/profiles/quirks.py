"""Named vendor deviations from the Bluetooth SIG formats, selected per device in the config.

A quirk that is about the bytes rewrites the value into what the standard says before the
standard parser runs, so each parser stays exactly the specification and the raw bytes on the
wire stay what the device sent. Quirks about the procedure (a meter's clock, its record
numbering) live with the procedure: ``homevitals.gateway.racp``.

- ``bp_big_endian_pulse_status``: a blood pressure monitor that sends the pulse rate SFLOAT and
  the measurement status word most significant byte first (seen in white-label monitors whose
  firmware writes those two fields with a big-endian helper, while the pressures are right).
- ``glucose_mg_dl_without_exponent``: a glucose meter that puts plain mg/dL into the kg/L field
  with exponent 0 (100 mg/dL sent as SFLOAT 100 instead of 100e-5 kg/L). Only values with
  exponent 0 are rewritten, so a firmware update that fixes the meter does not break it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

__all__ = ["BYTE_QUIRKS", "apply"]


def _swap(data: bytearray, pos: int) -> None:
    if pos + 2 <= len(data):
        data[pos], data[pos + 1] = data[pos + 1], data[pos]


def _bp_big_endian_pulse_status(data: bytes) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    flags = out[0]
    pos = 7 + (7 if flags & 0x02 else 0)  # flags + 3 SFLOAT pressures, then the time stamp
    if flags & 0x04:
        _swap(out, pos)
        pos += 2
    pos += 1 if flags & 0x08 else 0
    if flags & 0x10:
        _swap(out, pos)
    return bytes(out)


def _glucose_mg_dl_without_exponent(data: bytes) -> bytes:
    flags = data[0] if data else 0
    if not flags & 0x02 or flags & 0x04:  # no concentration, or mol/L: nothing to fix
        return data
    pos = 10 + (2 if flags & 0x01 else 0)
    if len(data) < pos + 2:
        return data
    raw = int.from_bytes(data[pos:pos + 2], "little")
    if raw >> 12 != 0 or raw in range(0x07FE, 0x0803):  # exponent set, or a special value
        return data
    fixed = (0xB << 12) | (raw & 0x0FFF)  # same mantissa, exponent -5: mg/dL as 1e-5 kg/L
    return data[:pos] + fixed.to_bytes(2, "little") + data[pos + 2:]


BYTE_QUIRKS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "bp_big_endian_pulse_status": ("2A35", _bp_big_endian_pulse_status),
    "glucose_mg_dl_without_exponent": ("2A18", _glucose_mg_dl_without_exponent),
}


def apply(characteristic: str, data: bytes, quirks: Collection[str]) -> tuple[bytes, list[str]]:
    """The value rewritten by the byte quirks that apply to ``characteristic``, and which did."""
    applied: list[str] = []
    for name in sorted(quirks):
        entry = BYTE_QUIRKS.get(name)
        if entry is not None and entry[0] == characteristic:
            fixed = entry[1](data)
            if fixed != data:
                applied.append(name)
            data = fixed
    return data, applied
