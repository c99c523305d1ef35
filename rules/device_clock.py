"""Device clocks that are off: noticed, flagged, and judged at the gateway's receive time.

A reading's ``time`` is the device's own time stamp. Ingest already refuses to file a reading by a
clock far in the future or reset to its epoch (``device_clock_suspect``, ingest/service.py); the
rules read the stream before ingest, so they apply the same test, plus one ingest cannot make
alone: a *streaming* device (a CGM every 5 minutes) whose every reading arrives long after its
stamp (a clock an hour behind after a daylight-saving change, issue 14). A meter downloading its
memory, or a CGM backfilling after a link drop, sends old readings in a burst, not for a quarter of
an hour, so it is not mistaken for a bad clock. A suspect reading is judged as if taken when the
gateway received it, and carries the flag into the alert text.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta

from homevitals.vocab.readings import Reading

__all__ = ["CLOCK_FLAG", "DeviceClocks"]

logger = logging.getLogger(__name__)

CLOCK_FLAG = "device_clock_suspect"  # the flag ingest sets for the same reason
AHEAD_LIMIT = timedelta(minutes=5)  # as ingest's _CLOCK_AHEAD_LIMIT
EPOCH_YEAR = 2020  # as ingest's _CLOCK_EPOCH_YEAR: a clock reset after a battery change
BEHIND_LIMIT = timedelta(minutes=5)  # "off by more than a few minutes"
BEHIND_FOR = timedelta(minutes=15)  # ... on every reading received for this long


class DeviceClocks:
    """Per device, since when every reading has arrived late (memory only: relearned in
    ``BEHIND_FOR`` after a restart)."""

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts
        self._late_since: dict[str, datetime] = {}
        self._warned: set[str] = set()

    def judge(self, r: Reading) -> Reading:
        if CLOCK_FLAG in r.flags:
            return r
        if self._suspect(r):
            self.counts[CLOCK_FLAG] += 1
            if r.device not in self._warned:
                self._warned.add(r.device)
                logger.warning(
                    "device %s: its clock is off (reading %s stamped %s, received %s); its"
                    " readings are judged at their receive time and flagged",
                    r.device,
                    r.reading_id,
                    r.time.isoformat(),
                    r.received_at.isoformat(),
                )
            return replace(r, time=r.received_at, flags=(*r.flags, CLOCK_FLAG))
        return r

    def _suspect(self, r: Reading) -> bool:
        if r.time - r.received_at > AHEAD_LIMIT or r.time.year < EPOCH_YEAR:
            return True
        if r.received_at - r.time <= BEHIND_LIMIT:
            self._late_since.pop(r.device, None)
            self._warned.discard(r.device)  # warn again if it goes wrong again
            return False
        since = self._late_since.setdefault(r.device, r.received_at)
        return r.received_at - since >= BEHIND_FOR
