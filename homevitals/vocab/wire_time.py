"""Times on the wire: RFC 3339 in UTC with microseconds, within what the stores can hold."""

from __future__ import annotations

from datetime import UTC, datetime

from homevitals.vocab.errors import WireError

__all__ = ["format_time", "parse_time"]

# Times the stores can hold: InfluxDB keeps int64 nanoseconds (1677-09-21 to 2262-04-11). Devices
# whose clocks reset report years like 2000, so the floor is the Unix epoch, not "recent".
_TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_MAX = datetime(2262, 1, 1, tzinfo=UTC)



def format_time(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(value: object, key: str) -> datetime:
    if not isinstance(value, str):
        raise WireError("bad_time", f"{key} must be an RFC 3339 string, got {value!r}")
    try:
        t = datetime.fromisoformat(value)  # Python 3.11 reads the "Z" suffix itself
    except ValueError as exc:
        raise WireError("bad_time", f"{key} {value!r} is not an RFC 3339 time") from exc
    if t.tzinfo is None:
        raise WireError("bad_time", f"{key} {value!r} has no UTC offset")
    try:
        t = t if t.tzinfo is UTC else t.astimezone(UTC)
    except OverflowError as exc:  # 9999-12-31T23:00-05:00 is past datetime.max in UTC
        raise WireError("bad_time", f"{key} {value!r} is out of range") from exc
    if not _TIME_MIN <= t < _TIME_MAX:
        raise WireError(
            "bad_time", f"{key} {value!r} is outside {_TIME_MIN.year}-{_TIME_MAX.year}"
        )
    return t
