"""A cursor over a characteristic value that turns every short read into a ProfileError.

Parsers read through ``Reader`` only, so no IndexError or struct.error can escape them: a value
that ends early is reported with what was expected and how many bytes there were.
"""

from __future__ import annotations

from datetime import datetime

from homevitals.gateway.errors import ProfileError

__all__ = ["Reader", "date_time"]


def _bytes(n: int) -> str:
    return f"{n} byte" if n == 1 else f"{n} bytes"


class Reader:
    def __init__(self, data: bytes, where: str) -> None:
        self.data = data
        self.where = where
        self.pos = 0
        self.flags = 0

    def require(self, n: int, what: str) -> None:
        """The mandatory part: at least ``n`` bytes holding ``what``."""
        if len(self.data) < n:
            raise ProfileError(
                f"{self.where}: needs at least {_bytes(n)} ({what}), got {len(self.data)}"
            )

    def take(self, n: int, what: str, *, optional: bool = True) -> bytes:
        """The next ``n`` bytes; ``optional`` fields are the ones the flags announced."""
        end = self.pos + n
        if end > len(self.data):
            if optional:
                raise ProfileError(
                    f"{self.where}: flags 0x{self.flags:02X} announce {what}"
                    f" but only {_bytes(len(self.data))}"
                )
            left = len(self.data) - self.pos
            raise ProfileError(
                f"{self.where}: {what} is cut short: it takes {_bytes(n)}, the value ends after"
                f" {_bytes(len(self.data))} with {_bytes(left)} left"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def uint(self, n: int, what: str, *, optional: bool = True) -> int:
        return int.from_bytes(self.take(n, what, optional=optional), "little")

    def sint(self, n: int, what: str, *, optional: bool = True) -> int:
        return int.from_bytes(self.take(n, what, optional=optional), "little", signed=True)

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk


def date_time(raw: bytes, *, where: str, field: str) -> tuple[datetime | None, str]:
    """A 7-byte Date Time (GSS "Date Time": uint16 year, then month, day, hours, minutes,
    seconds as uint8). Year, month or day 0 means "not known": the time is then None and only
    the text (e.g. "0000-04-17 20:41:59") is returned. Anything else out of range is an error.
    """
    year = int.from_bytes(raw[0:2], "little")
    month, day, hour, minute, second = raw[2], raw[3], raw[4], raw[5], raw[6]
    text = f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
    if 0 in (year, month, day):
        return None, text
    if not 1582 <= year <= 9999:
        raise ProfileError(f"{where}: {field} year {year} is outside 1582-9999")
    try:
        return datetime(year, month, day, hour, minute, second), text  # naive: device-local time
    except ValueError as exc:
        raise ProfileError(f"{where}: {field} {text} is not a valid date and time") from exc
