"""CRC-16/MCRF4XX, the E2E-CRC of the Continuous Glucose Monitoring Service.

CGMS 1.0.1 section 2.8 ("E2E-CRC"): polynomial x^16 + x^12 + x^5 + 1, seed 0xFFFF, least
significant bit first, no final XOR - the parameters catalogued as CRC-16/MCRF4XX.
Check value: crc16_mcrf4xx(b"123456789") == 0x6F91.
"""

from __future__ import annotations

__all__ = ["crc16_mcrf4xx"]


def _table() -> tuple[int, ...]:
    rows = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        rows.append(crc)
    return tuple(rows)


_TABLE = _table()


def crc16_mcrf4xx(data: bytes, crc: int = 0xFFFF) -> int:
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc
