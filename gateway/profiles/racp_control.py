"""Record Access Control Point (0x2A52) values, for ``homevitals decode``.

GSS "Record Access Control Point": op code, operator, then an operand whose meaning the op code
fixes. The gateway's own download procedure (``homevitals.gateway.racp``) uses these tables; this
module only describes one value, as a user debugging a glucose meter sees them go by.
"""

from __future__ import annotations

from homevitals.gateway.errors import ProfileError
from homevitals.gateway.profiles.decoded import Decoded, Detail

__all__ = ["OP_CODES", "OPERATORS", "RESPONSE_CODES", "decode_racp"]

OP_CODES = {
    0x01: "report stored records",
    0x02: "delete stored records",
    0x03: "abort operation",
    0x04: "report number of stored records",
    0x05: "number of stored records response",
    0x06: "response code",
}
OPERATORS = {
    0x00: "null",
    0x01: "all records",
    0x02: "less than or equal to",
    0x03: "greater than or equal to",
    0x04: "within range of (inclusive)",
    0x05: "first record",
    0x06: "last record",
}
RESPONSE_CODES = {
    0x01: "success",
    0x02: "op code not supported",
    0x03: "invalid operator",
    0x04: "operator not supported",
    0x05: "invalid operand",
    0x06: "no records found",
    0x07: "abort unsuccessful",
    0x08: "procedure not completed",
    0x09: "operand not supported",
}
_FILTER_TYPES = {0x01: "sequence number", 0x02: "user facing time"}


def _name(table: dict[int, str], code: int) -> str:
    return table.get(code, f"reserved 0x{code:02X}")


def decode_racp(data: bytes) -> Decoded:
    """A request the collector wrote or an answer the meter indicated."""
    if len(data) < 2:
        raise ProfileError(f"0x2A52: needs at least 2 bytes (op code, operator), got {len(data)}")
    op, operator, operand = data[0], data[1], data[2:]
    details: dict[str, Detail] = {"op_code": _name(OP_CODES, op),
                                  "operator": _name(OPERATORS, operator)}
    if op == 0x06:
        if len(operand) < 2:
            raise ProfileError("0x2A52: a response code (op code 0x06) needs 4 bytes: 06 00,"
                               f" the request op code and the response, got {len(data)}")
        details["request_op_code"] = _name(OP_CODES, operand[0])
        details["response"] = _name(RESPONSE_CODES, operand[1])
    elif op == 0x05:
        if len(operand) < 2:
            raise ProfileError("0x2A52: a number of stored records response needs 4 bytes,"
                               f" got {len(data)}")
        details["number_of_records"] = int.from_bytes(operand[:2], "little")
    elif operand:
        details["filter_type"] = _name(_FILTER_TYPES, operand[0])
        details["operand"] = operand[1:].hex()
        if operand[0] == 0x01 and len(operand) >= 3:
            details["sequence_number"] = int.from_bytes(operand[1:3], "little")
    return Decoded(characteristic="2A52", details=details)
