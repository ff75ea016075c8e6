"""Phone numbers in logs: enough to tell people apart while debugging, not enough to call."""

from __future__ import annotations

_KEEP_START = 3  # "+45": the country
_KEEP_END = 4


def mask_phone(number: str) -> str:
    """'+4520123456' -> '+45****3456'; short or odd values are masked whole."""
    text = number.strip()
    if len(text) <= _KEEP_START + _KEEP_END:
        return "****"
    return f"{text[:_KEEP_START]}****{text[-_KEEP_END:]}"
