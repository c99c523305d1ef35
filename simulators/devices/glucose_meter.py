"""A simulated glucose meter: stored records served over the Record Access Control Point.

GLS 1.0 / GSS "Record Access Control Point" from the meter's side: "report number of stored
records" and "report stored records" with the operators all / >= sequence number, "abort
operation", and the response codes for what it does not support. Records are notified on
0x2A18 (each followed by its 0x2A34 context when it has one), then the response code is
indicated on 0x2A52. Vendor behaviours on request: records numbered newest-first
(``reverse_numbering``), a clock that is off (``clock_skew``, readable on Date Time 0x2A08),
concentration in mg/dL without the 1e-5 exponent (``mg_dl_without_exponent``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from homevitals.simulators.ble_values import (
    encode_date_time,
    encode_glucose_context,
    encode_glucose_measurement,
)
from homevitals.simulators.devices.base import SimulatedPeripheral, SimulatedSession
from homevitals.vocab.clock import Clock
from homevitals.vocab.units import MGDL_PER_MMOLL

__all__ = ["GlucoseMeter", "StoredRecord"]

RACP, MEASUREMENT, CONTEXT, DATE_TIME = "2A52", "2A18", "2A34", "2A08"
_SUCCESS, _OP_NOT_SUPPORTED, _OPERATOR_NOT_SUPPORTED, _INVALID_OPERAND = 0x01, 0x02, 0x04, 0x05
_NO_RECORDS, _FILTER_NOT_SUPPORTED = 0x06, 0x09


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A measurement in the meter's memory: when (meter's local clock) and how much."""

    time: datetime  # naive, the meter's clock
    mmol_l: float
    meal: str | None = None


class GlucoseMeter(SimulatedPeripheral):
    def __init__(
        self,
        address: str,
        records: Iterable[StoredRecord] = (),
        *,
        clock: Clock | None = None,
        zone: ZoneInfo | None = None,
        first_sequence: int = 1,
        reverse_numbering: bool = False,
        clock_skew: timedelta | None = None,
        mg_dl_without_exponent: bool = False,
        record_interval: float = 0.0,
        hang_up_after_transfer: bool = True,
    ) -> None:
        chars = [MEASUREMENT, CONTEXT, RACP, "2A19"] + ([DATE_TIME] if clock_skew else [])
        super().__init__(address, "Simulated Glucose Meter", ["1808", "180F"], chars, clock)
        self.records: list[StoredRecord] = list(records)
        self.zone = zone or ZoneInfo("UTC")
        self.first_sequence = first_sequence
        self.reverse_numbering = reverse_numbering
        self.clock_skew = clock_skew
        self.mg_dl_without_exponent = mg_dl_without_exponent
        self.record_interval = record_interval
        self.hang_up_after_transfer = hang_up_after_transfer
        self.values["2A19"] = bytes([87])
        self.requests: list[bytes] = []  # every RACP request, for tests
        self.reported = 0  # records sent over all transfers
        self._transfer: asyncio.Task[None] | None = None

    def add(self, record: StoredRecord) -> None:
        self.records.append(record)

    def record_count(self) -> int:
        return len(self.records)

    def sequence_of(self, index: int) -> int:
        """Record ``index`` (0 = oldest) -> its sequence number on this meter."""
        if self.reverse_numbering:
            return self.first_sequence + self.record_count() - 1 - index
        return self.first_sequence + index

    def value_of(self, index: int) -> tuple[bytes, bytes | None]:
        rec = self.records[index]
        seq = self.sequence_of(index)
        data = encode_glucose_measurement(seq, rec.time, rec.mmol_l, unit="kg/L",
                                          context_follows=rec.meal is not None)
        if self.mg_dl_without_exponent:
            mg_dl = round(rec.mmol_l * MGDL_PER_MMOLL)
            data = data[:10] + (mg_dl & 0x0FFF).to_bytes(2, "little") + data[12:]
        context = encode_glucose_context(seq, meal=rec.meal) if rec.meal else None
        return data, context

    def read(self, characteristic: str) -> bytes:
        if characteristic == DATE_TIME and self.clock_skew is not None:
            local = self.clock.now().astimezone(self.zone).replace(tzinfo=None, microsecond=0)
            return encode_date_time(local - self.clock_skew)
        return super().read(characteristic)

    async def on_write(self, session: SimulatedSession, characteristic: str, data: bytes) -> None:
        if characteristic != RACP or not data:
            await super().on_write(session, characteristic, data)
            return
        self.requests.append(data)
        op = data[0]
        if op == 0x03:  # abort operation
            if self._transfer is not None:
                self._transfer.cancel()
            self._respond(session, op, _SUCCESS)
            return
        if op not in (0x01, 0x04):
            self._respond(session, op, _OP_NOT_SUPPORTED)
            return
        selected = self._select(data[1:])
        if isinstance(selected, int):
            self._respond(session, op, selected)
        elif op == 0x04:
            session.indicate(RACP, bytes([0x05, 0x00]) + len(selected).to_bytes(2, "little"))
        else:
            self._transfer = asyncio.get_running_loop().create_task(
                self._report(session, selected))

    def _select(self, operand: bytes) -> list[int] | int:
        """Indexes of the records an operator/operand selects, in sequence order, or an error
        response code."""
        if not operand:
            return _INVALID_OPERAND
        order = sorted(range(self.record_count()), key=self.sequence_of)
        if operand[0] == 0x01:
            return order
        if operand[0] == 0x03:
            if len(operand) != 4:
                return _INVALID_OPERAND
            if operand[1] != 0x01:
                return _FILTER_NOT_SUPPORTED
            low = int.from_bytes(operand[2:4], "little")
            return [i for i in order if self.sequence_of(i) >= low]
        return _OPERATOR_NOT_SUPPORTED

    async def _report(self, session: SimulatedSession, indexes: list[int]) -> None:
        for i in indexes:
            data, context = self.value_of(i)
            if not session.notify(MEASUREMENT, data):
                return  # hung up mid-transfer
            if context is not None and not session.notify(CONTEXT, context):
                return
            self.reported += 1
            await asyncio.sleep(self.record_interval)
        self._respond(session, 0x01, _SUCCESS if indexes else _NO_RECORDS)
        if self.hang_up_after_transfer:
            await asyncio.sleep(0.01)
            session.hang_up()

    def _respond(self, session: SimulatedSession, op: int, code: int) -> None:
        session.indicate(RACP, bytes([0x06, 0x00, op, code]))
