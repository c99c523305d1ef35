"""How many SMS segments a text costs, and in which encoding (3GPP TS 23.038, TS 23.040).

A text that uses only the GSM 7-bit default alphabet goes as GSM-7: 160 septets in one SMS, 153
per segment once it is split (the user data header takes 7). Characters of the extension table
(``^{}\\[~]|€`` and form feed) cost two septets (ESC + char), and a split never separates the two.
Any other character (``°``, ``č``, Chinese ...) makes the whole text UCS-2: 70 UTF-16 code units in
one SMS, 67 per segment, and a surrogate pair is never split. This is what carriers and Twilio
bill and what a phone shows as one message or several.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = ["SmsLength", "sms_length", "to_gsm7"]

# TS 23.038 section 6.2.1: the default alphabet (0x1B, the escape, is not a character of its own).
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# TS 23.038 section 6.2.1.1: the extension table, reached by ESC (two septets each).
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


@dataclass(frozen=True, slots=True)
class SmsLength:
    """``units``: septets (GSM-7) or UTF-16 code units (UCS-2); ``segments``: SMS billed."""

    encoding: str
    units: int
    segments: int

    def __post_init__(self) -> None:
        if self.encoding not in ("GSM-7", "UCS-2"):
            raise ValueError(f"unknown SMS encoding {self.encoding!r}")


def _pack(costs: list[int], single: int, per_segment: int) -> int:
    """Segments needed for characters of these costs; a character is never split."""
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for c in costs:
        if used + c > per_segment:
            segments, used = segments + 1, 0
        used += c
    return segments


def sms_length(text: str) -> SmsLength:
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENSION for ch in text):
        costs = [2 if ch in _GSM7_EXTENSION else 1 for ch in text]
        return SmsLength("GSM-7", sum(costs), _pack(costs, 160, 153))
    costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SmsLength("UCS-2", sum(costs), _pack(costs, 70, 67))


def to_gsm7(text: str) -> str | None:
    """The text with accents the GSM alphabet lacks taken off ("Kovačič" -> "Kovacic"; "é", "ü",
    "ñ" are in it and stay), or None when that is not enough (Chinese, "°", emoji)."""
    out = []
    for ch in text:
        if ch not in _GSM7_BASIC and ch not in _GSM7_EXTENSION:
            parts = unicodedata.normalize("NFKD", ch)
            ch = "".join(c for c in parts if not unicodedata.combining(c))
            if not ch or any(c not in _GSM7_BASIC and c not in _GSM7_EXTENSION for c in ch):
                return None
        out.append(ch)
    return "".join(out)
