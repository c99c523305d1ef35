"""IEEE 11073-20601 SFLOAT-Type (16 bit) and FLOAT-Type (32 bit) decoding.

Both are ``mantissa * 10**exponent`` with a two's-complement exponent in the top bits (4 bits for
SFLOAT, 8 for FLOAT) and a two's-complement mantissa below (12 and 24 bits). With exponent 0, the
mantissas at the top and bottom of the range are special values (IEEE 11073-20601 "Special
values" of FLOAT-Type / SFLOAT-Type, as the Bluetooth GSS uses them for medfloat16/medfloat32):
NaN, NRes (not at this resolution), +INF, -INF and one reserved value. A special value is never
a measurement, so decoding one raises ``ProfileError`` naming it.
"""

from __future__ import annotations

from homevitals.gateway.errors import ProfileError

__all__ = [
    "FLOAT_SPECIALS",
    "SFLOAT_SPECIALS",
    "decode_float",
    "decode_sfloat",
    "float_parts",
    "sfloat_parts",
    "sfloat_special",
]

SFLOAT_SPECIALS: dict[int, str] = {
    0x07FF: "NaN",
    0x0800: "NRes",
    0x07FE: "+INF",
    0x0802: "-INF",
    0x0801: "reserved",
}
FLOAT_SPECIALS: dict[int, str] = {
    0x007FFFFF: "NaN",
    0x00800000: "NRes",
    0x007FFFFE: "+INF",
    0x00800002: "-INF",
    0x00800001: "reserved",
}


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def sfloat_parts(raw: int) -> tuple[int, int]:
    """(mantissa, exponent) of a 16-bit SFLOAT, special values included."""
    return _signed(raw & 0x0FFF, 12), _signed((raw >> 12) & 0x0F, 4)


def float_parts(raw: int) -> tuple[int, int]:
    """(mantissa, exponent) of a 32-bit FLOAT, special values included."""
    return _signed(raw & 0x00FFFFFF, 24), _signed((raw >> 24) & 0xFF, 8)


def sfloat_special(raw: int) -> str | None:
    """The name of the special value ``raw`` encodes ("NaN", "NRes", ...), or None."""
    return SFLOAT_SPECIALS.get(raw & 0xFFFF)


def _scale(mantissa: int, exponent: int) -> float:
    # Divide by an exact power of ten rather than multiply by 10**-n, so 189 e-1 is 18.9, and
    # round to the digits the exponent carries so no binary noise reaches the wire.
    scale: int = 10 ** abs(exponent)
    if exponent >= 0:
        return float(mantissa * scale)
    return round(mantissa / scale, -exponent)


def decode_sfloat(raw: int, *, where: str, field: str) -> float:
    """The value of a 16-bit SFLOAT; ``where`` ("0x2A18") and ``field`` name it in errors."""
    if not 0 <= raw <= 0xFFFF:
        raise ProfileError(f"{where}: {field} 0x{raw:X} is not a 16-bit SFLOAT")
    special = SFLOAT_SPECIALS.get(raw)
    if special is not None:
        raise ProfileError(f"{where}: {field} is SFLOAT {special} (0x{raw:04X})")
    return _scale(*sfloat_parts(raw))


def decode_float(raw: int, *, where: str, field: str) -> float:
    """The value of a 32-bit FLOAT; ``where`` and ``field`` name it in errors."""
    if not 0 <= raw <= 0xFFFFFFFF:
        raise ProfileError(f"{where}: {field} 0x{raw:X} is not a 32-bit FLOAT")
    special = FLOAT_SPECIALS.get(raw)
    if special is not None:
        raise ProfileError(f"{where}: {field} is FLOAT {special} (0x{raw:08X})")
    return _scale(*float_parts(raw))
