"""Glucose record download over the Record Access Control Point (0x2A52), over any ``Radio``.

GLS 1.0 section 3.2 / GSS "Record Access Control Point": the collector writes a request
(op code, operator, operand) with response, the meter notifies the matching Glucose Measurement
(0x2A18) records - each followed by its Glucose Measurement Context (0x2A34) when the record's
flags say one follows - and ends with an indication on 0x2A52: a Response Code (op code 0x06)
or, for "report number of stored records", a count (op code 0x05).

What the gateway keeps on disk per device (the durable queue's key/value state, written in the
same SQLite transaction as the readings it covers): the highest sequence number committed. A
download asks for "sequence number >= last + 1", so nothing is fetched twice or skipped across
restarts, reconnects and an aborted transfer: every record is committed (reading + new mark)
atomically as soon as its context is known, and a transfer cut anywhere resumes after the last
committed record.

Quirks (config ``quirks``):
- ``glucose_reverse_sequence``: the meter numbers its records newest-first (record 1 is always
  the latest), so sequence numbers move under our feet. Download all records, keep those newer
  than the newest device time committed, and commit them together only when the transfer
  completes: an aborted transfer commits nothing and is repeated whole.
- ``glucose_clock_from_date_time``: the meter's clock is read from its Date Time
  characteristic (0x2A08) at connect, and record times are shifted by the difference to the
  gateway's clock (meters are rarely set right, and some are reset by a battery change).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from homevitals.gateway.errors import GatewayError, ProfileError
from homevitals.gateway.gatt import GattSession, RawValue
from homevitals.gateway.profiles import decode
from homevitals.gateway.profiles.racp_control import RESPONSE_CODES
from homevitals.gateway.profiles.reader import date_time
from homevitals.vocab.clock import Clock
from homevitals.vocab.config import DeviceConfig, Quirk

__all__ = [
    "DownloadResult",
    "RacpError",
    "RecordStore",
    "download_records",
    "response_code_name",
]

logger = logging.getLogger(__name__)

RACP, MEASUREMENT, CONTEXT, DATE_TIME = "2A52", "2A18", "2A34", "2A08"

# GSS Record Access Control Point: op codes, operators, filter type, response codes.
OP_REPORT, OP_DELETE, OP_ABORT, OP_REPORT_NUMBER = 0x01, 0x02, 0x03, 0x04
OP_NUMBER_RESPONSE, OP_RESPONSE = 0x05, 0x06
OPERATOR_NULL, OPERATOR_ALL, OPERATOR_GREATER_OR_EQUAL, OPERATOR_LAST = 0x00, 0x01, 0x03, 0x06
FILTER_SEQUENCE = 0x01
SUCCESS, NO_RECORDS = 0x01, 0x06


def response_code_name(code: int) -> str:
    return RESPONSE_CODES.get(code, f"reserved 0x{code:02X}")


class RacpError(GatewayError):
    """The meter refused or did not finish a request (names the response code)."""


class RecordStore(Protocol):
    """Where records go: the gateway service over the durable queue."""

    def get_state(self, key: str) -> str | None: ...

    def local_now(self) -> datetime:
        """The gateway's time in the home's zone, naive (as a meter's clock is)."""
        ...

    def commit_glucose(
        self,
        device: DeviceConfig,
        records: Sequence[tuple[RawValue, RawValue | None]],
        state: Mapping[str, str],
        clock_offset: timedelta | None = None,
    ) -> int:
        """Queue the readings and write ``state`` in one transaction; returns how many were new."""
        ...

    def reject(self, raw: RawValue, error: str, state: Mapping[str, str] | None = None) -> None:
        """Dead-letter a value that did not decode, and write ``state``."""
        ...


@dataclass
class DownloadResult:
    requested: int | None = None  # what "report number of stored records" answered
    received: int = 0
    committed: int = 0
    skipped: int = 0  # already committed (a repeated record) or older than the mark
    rejected: int = 0
    response: str = ""


@dataclass
class _Pending:
    sequence: int
    device_time: datetime | None
    measurement: RawValue
    context: RawValue | None = None
    wants_context: bool = False


@dataclass
class _Transfer:
    device: DeviceConfig
    store: RecordStore
    clock: Clock
    reverse: bool
    last_seq: int | None
    last_time: datetime | None
    clock_offset: timedelta | None
    result: DownloadResult = field(default_factory=DownloadResult)
    # Time mode: records are chosen by device time and committed as one batch at the end of
    # the transfer (sequence numbers wrapped or restarted; see download_records).
    by_time: bool = False
    pending: _Pending | None = None
    batch: list[_Pending] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)  # sequence numbers complete in this transfer
    probe: list[_Pending] | None = None  # records asked for to look, not to keep

    def measurement(self, raw: RawValue) -> None:
        self.result.received += 1
        try:
            d = decode(MEASUREMENT, raw.data, self.device.quirks)
        except ProfileError as exc:
            self.flush()
            self.reject(raw, str(exc))
            return
        assert d.sequence is not None  # 0x2A18 always carries one
        if d.sequence in self.seen or (self.pending and self.pending.sequence == d.sequence):
            # Found in the BLE VM harness: after a reconnect, bleak 3.1 on BlueZ 5.66 handed
            # every notification of the new transfer over twice. One record is one reading.
            self.result.skipped += 1
            return
        self.flush()
        self.pending = _Pending(d.sequence, d.device_time, raw,
                                wants_context=bool(d.details.get("context_follows")))
        if not self.pending.wants_context:
            self.flush()

    def context(self, raw: RawValue) -> None:
        try:
            d = decode(CONTEXT, raw.data)
        except ProfileError as exc:
            self.reject(raw, str(exc))
            return
        if self.pending is None or self.pending.sequence != d.sequence:
            if d.sequence in self.seen:
                return  # the repeated context of a record already complete (see above)
            # GLS 1.0 section 3.2: a context follows its own measurement; anything else is
            # kept for the engineer, not guessed at.
            self.reject(raw, f"0x2A34: context for sequence number {d.sequence} does not"
                             " follow its measurement")
            return
        self.pending.context = raw
        self.flush()

    def reject(self, raw: RawValue, error: str) -> None:
        """Dead-letter a record once. The mark cannot move past a record that does not decode
        (its sequence number is not to be trusted), so the meter sends it again in every
        download until a later record is committed: the ones already dead-lettered are known by
        their bytes and counted as skipped."""
        key = f"racp:{self.device.id}:rejected"
        known = [k for k in (self.store.get_state(key) or "").split(",") if k]
        digest = hashlib.sha256(raw.data).hexdigest()[:16]
        if digest in known:
            self.result.skipped += 1
            return
        self.result.rejected += 1
        self.store.reject(raw, error, {key: ",".join([*known[-15:], digest])})

    def flush(self) -> None:
        p, self.pending = self.pending, None
        if p is None:
            return
        self.seen.add(p.sequence)
        if self.probe is not None:
            self.probe.append(p)
            return
        if self.reverse or self.by_time:
            if self._newer(p):
                self.batch.append(p)
            else:
                self.result.skipped += 1
            return
        if self.last_seq is not None and p.sequence <= self.last_seq:
            self.result.skipped += 1  # a repeated record, or one the meter sent unasked
            return
        state = {_seq_key(self.device): str(p.sequence)}
        if p.device_time is not None:
            state[_time_key(self.device)] = p.device_time.isoformat()
        new = self.store.commit_glucose(self.device, [(p.measurement, p.context)], state,
                                        self.clock_offset)
        self.result.committed += new
        self.last_seq = p.sequence

    def _newer(self, p: _Pending) -> bool:
        """Time mode: is the record newer than the newest one committed?"""
        if self.last_time is None:
            return True
        if p.device_time is None:
            return False
        if self.by_time and p.device_time == self.last_time:
            # After a wrap or reset, a record stamped in the same second as the mark is kept
            # unless it is the mark itself: a duplicate has the same id, a lost hypo has none.
            return p.sequence != self.last_seq
        return p.device_time > self.last_time

    def finish(self) -> None:
        """End of a successful transfer: a batch (time mode) is committed whole, with the mark
        moved to its newest record."""
        self.flush()
        if not self.batch:
            return
        self.batch.sort(key=lambda p: p.device_time or datetime.min)
        newest = self.batch[-1]
        state = {} if newest.device_time is None else {
            _time_key(self.device): newest.device_time.isoformat()}
        if not self.reverse:
            state[_seq_key(self.device)] = str(newest.sequence)
        new = self.store.commit_glucose(
            self.device, [(p.measurement, p.context) for p in self.batch], state,
            self.clock_offset)
        self.result.committed += new
        self.batch.clear()


def _seq_key(device: DeviceConfig) -> str:
    return f"racp:{device.id}:last_sequence"


def _time_key(device: DeviceConfig) -> str:
    return f"racp:{device.id}:last_device_time"


async def download_records(
    session: GattSession,
    device: DeviceConfig,
    store: RecordStore,
    clock: Clock,
    *,
    timeout: float = 30.0,
) -> DownloadResult:
    """Fetch every record the gateway has not committed yet; raises RacpError, TimeoutError or
    ConnectionError (what was committed before stays committed)."""
    reverse = Quirk.GLUCOSE_REVERSE_SEQUENCE in device.quirks
    last_seq = store.get_state(_seq_key(device))
    last_time = store.get_state(_time_key(device))
    t = _Transfer(device, store, clock, reverse,
                  None if last_seq is None else int(last_seq),
                  None if last_time is None else datetime.fromisoformat(last_time),
                  await _clock_offset(session, device, store))
    answers: asyncio.Queue[bytes] = asyncio.Queue()

    def received(characteristic: str, data: bytes) -> RawValue:
        return RawValue(device.id, characteristic, data, clock.now())

    await session.start_notify(MEASUREMENT, lambda b: t.measurement(received(MEASUREMENT, b)))
    if session.has(CONTEXT):
        await session.start_notify(CONTEXT, lambda b: t.context(received(CONTEXT, b)))
    await session.start_notify(RACP, answers.put_nowait)
    if not reverse and t.last_seq is not None and t.last_seq >= 0xFFFF:
        # GLS sequence numbers are uint16: after 65535 the meter numbers from 0 again, and
        # ">= 65536" cannot be asked. Download all, keep what is newer than the mark by device
        # time; the batch moves the mark to the new numbering.
        logger.warning("%s: sequence numbers wrapped at 65535; choosing records by device time",
                       device.id)
        t.by_time = True
    operand = _filter(None if reverse or t.by_time else t.last_seq)
    t.result.requested = await _number_of_records(session, answers, operand, timeout)
    if t.result.requested == 0 and not reverse and not t.by_time and t.last_seq is not None:
        if not await _numbering_restarted(session, answers, t, timeout):
            t.result.response = response_code_name(NO_RECORDS)
            return t.result
        t.by_time, operand = True, _filter(None)
        t.result.requested = await _number_of_records(session, answers, operand, timeout)
    if t.result.requested == 0:
        t.result.response = response_code_name(NO_RECORDS)
        return t.result
    await session.write(RACP, bytes([OP_REPORT]) + operand, response=True)
    code = await _response(session, answers, OP_REPORT, timeout)
    t.result.response = response_code_name(code)
    if code not in (SUCCESS, NO_RECORDS):
        raise RacpError(f"{device.id}: RACP report stored records failed: {t.result.response}")
    t.finish()
    logger.info("%s: RACP %s: %d received, %d new, %d already had, %d rejected", device.id,
                t.result.response, t.result.received, t.result.committed, t.result.skipped,
                t.result.rejected)
    return t.result


async def _numbering_restarted(session: GattSession, answers: asyncio.Queue[bytes],
                               t: _Transfer, timeout: float) -> bool:
    """Nothing at or above the mark: is that "nothing new", or did the meter restart its
    numbering (a reset, a firmware update)? Ask for its last record (operator 0x06): a record
    numbered at or below the mark but stamped after it means the numbering went back while time
    went forward. A meter without the operator is taken at its word."""
    t.probe = []
    try:
        await session.write(RACP, bytes([OP_REPORT, OPERATOR_LAST]), response=True)
        code = await _response(session, answers, OP_REPORT, timeout)
        t.flush()
    finally:
        seen, t.probe, t.pending = t.probe, None, None
        t.seen.clear()
    if code != SUCCESS or t.last_seq is None or t.last_time is None:
        return False
    restarted = [p for p in seen if p.sequence <= t.last_seq and p.device_time is not None
                 and p.device_time > t.last_time]
    if restarted:
        logger.warning("%s: the meter restarted its record numbering (record %d is dated %s,"
                       " after record %d of %s); choosing records by device time",
                       t.device.id, restarted[0].sequence, restarted[0].device_time,
                       t.last_seq, t.last_time)
    return bool(restarted)


def _filter(last_seq: int | None) -> bytes:
    """Operator and operand: all records, or sequence number >= last + 1 (GSS RACP 3.x)."""
    if last_seq is None:
        return bytes([OPERATOR_ALL])
    return bytes([OPERATOR_GREATER_OR_EQUAL, FILTER_SEQUENCE]) + (last_seq + 1).to_bytes(
        2, "little")


async def _number_of_records(session: GattSession, answers: asyncio.Queue[bytes],
                             operand: bytes, timeout: float) -> int | None:
    await session.write(RACP, bytes([OP_REPORT_NUMBER]) + operand, response=True)
    answer = await _next(session, answers, timeout, OP_REPORT_NUMBER)
    if answer[:2] == bytes([OP_NUMBER_RESPONSE, OPERATOR_NULL]) and len(answer) >= 4:
        return int.from_bytes(answer[2:4], "little")
    if len(answer) >= 4 and answer[0] == OP_RESPONSE and answer[3] == NO_RECORDS:
        return 0
    # GLS makes "report number" mandatory, but a meter that refuses it can still report.
    logger.warning("RACP: unexpected answer %s to report number of records", answer.hex())
    return None


async def _response(session: GattSession, answers: asyncio.Queue[bytes], op: int,
                    timeout: float) -> int:
    while True:
        answer = await _next(session, answers, timeout, op)
        if len(answer) >= 4 and answer[0] == OP_RESPONSE and answer[2] == op:
            return answer[3]
        logger.warning("RACP: ignoring unexpected indication %s", answer.hex())


async def _next(session: GattSession, answers: asyncio.Queue[bytes], timeout: float,
                op: int) -> bytes:
    """The next RACP indication; a meter silent for ``timeout`` is sent Abort (op code 0x03)."""
    get = asyncio.ensure_future(answers.get())
    gone = asyncio.ensure_future(session.wait_disconnected())
    try:
        done, _ = await asyncio.wait({get, gone}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (get, gone):
            task.cancel()
    if get in done:
        return get.result()
    if gone in done:
        raise ConnectionError(f"{session.address}: link lost during RACP op code 0x{op:02X}")
    await session.write(RACP, bytes([OP_ABORT, OPERATOR_NULL]), response=True)
    raise TimeoutError(f"{session.address}: no RACP answer within {timeout:g} s"
                       f" (op code 0x{op:02X}); sent Abort Operation")


async def _clock_offset(session: GattSession, device: DeviceConfig,
                        store: RecordStore) -> timedelta | None:
    if Quirk.GLUCOSE_CLOCK_FROM_DATE_TIME not in device.quirks or not session.has(DATE_TIME):
        return None
    raw = await session.read(DATE_TIME)
    if len(raw) < 7:
        raise ProfileError(f"0x2A08: Date Time needs 7 bytes, got {len(raw)}")
    meter_now, text = date_time(raw[:7], where="0x2A08", field="date time")
    if meter_now is None:
        raise ProfileError(f"0x2A08: the meter's clock is not set ({text})")
    # Both naive, in the home's local time: the service attaches the home's zone to record times.
    return store.local_now() - meter_now
