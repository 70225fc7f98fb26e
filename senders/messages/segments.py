"""SMS encoding and segment counting (pure).

A body that fits the GSM 03.38 alphabet is sent as GSM-7: 160 septets in one segment, 153 per
segment when concatenated; characters of the extension table (``^{}\\[~]|€`` and form feed)
take two septets and an escape pair is never split across segments. Anything else is UCS-2:
70 UTF-16 code units in one segment, 67 per segment when concatenated, and a surrogate pair
(most emoji) is never split. This is how carriers and Twilio count, so it is also what the rate
limiter charges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED: Final = frozenset("\f^{}\\[~]|€")

# Twilio's "smart encoding" idea: look-alike punctuation that would force UCS-2 for nothing.
SMART_REPLACEMENTS: Final[dict[str, str]] = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u2033": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2212": "-",
    "\u2026": "...",
    "\u00a0": " ",
    "\u2009": " ",
    "\u200a": " ",
    "\u202f": " ",
    "\u200b": "",
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2022": "-",
}
_SMART_TABLE: Final = str.maketrans(SMART_REPLACEMENTS)

GSM7_SINGLE: Final = 160
GSM7_MULTI: Final = 153
UCS2_SINGLE: Final = 70
UCS2_MULTI: Final = 67


@dataclass(frozen=True, slots=True)
class SmsEncoding:
    """A body's encoding, its length in encoding units, and the segments it needs."""

    encoding: Encoding
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def smart_encode(text: str) -> str:
    """Replace typographic look-alikes with GSM-7 characters (quotes, dashes, ellipsis)."""
    return text.translate(_SMART_TABLE)


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text)


def encode_info(text: str) -> SmsEncoding:
    """The encoding and segment count of ``text`` exactly as sent (no replacements)."""
    if is_gsm7(text):
        widths = [2 if ch in GSM7_EXTENDED else 1 for ch in text]
        return SmsEncoding("GSM-7", sum(widths), _pack(widths, GSM7_SINGLE, GSM7_MULTI))
    widths = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SmsEncoding("UCS-2", sum(widths), _pack(widths, UCS2_SINGLE, UCS2_MULTI))


def _pack(widths: list[int], single: int, multi: int) -> int:
    """Segments needed when indivisible characters of ``widths`` are packed greedily."""
    total = sum(widths)
    if total <= single:
        return 1
    segments, used = 1, 0
    for width in widths:
        if used + width > multi:
            segments += 1
            used = 0
        used += width
    return segments
