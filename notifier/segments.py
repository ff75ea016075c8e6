"""How many SMS segments a text costs (3GPP TS 23.038 / 23.040).

GSM-7 when every character is in the GSM 03.38 default alphabet or its extension table
(extension characters take an escape plus the character: two septets); otherwise UCS-2, where
a character outside the Basic Multilingual Plane takes two 16-bit units. A single segment holds
160 septets or 70 units; a concatenated message loses room to its header: 153 septets or 67
units per segment. A two-unit character is never split across segments, as handsets and
Twilio do, so a segment may carry one unit less than its room.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC: Final[frozenset[str]] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION: Final[frozenset[str]] = frozenset("\f^{}\\[~]|€")

# (room in a single segment, room per segment when concatenated), in septets or 16-bit units
_ROOM: Final[dict[Encoding, tuple[int, int]]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


@dataclass(frozen=True, slots=True)
class SegmentCount:
    encoding: Encoding
    units: int  # septets for GSM-7, 16-bit code units for UCS-2
    segments: int


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _unit_sizes(text: str, encoding: Encoding) -> list[int]:
    if encoding == "GSM-7":
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _pack(sizes: list[int], room: int) -> int:
    """Segments needed when no character may straddle two segments."""
    segments, used = 1, 0
    for size in sizes:
        if used + size > room:
            segments, used = segments + 1, 0
        used += size
    return segments


def count_segments(text: str) -> SegmentCount:
    encoding: Encoding = "GSM-7" if is_gsm7(text) else "UCS-2"
    sizes = _unit_sizes(text, encoding)
    units = sum(sizes)
    single, concatenated = _ROOM[encoding]
    segments = 1 if units <= single else _pack(sizes, concatenated)
    return SegmentCount(encoding=encoding, units=units, segments=segments)


def segments(text: str) -> int:
    return count_segments(text).segments
