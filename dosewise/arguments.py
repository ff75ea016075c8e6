"""Argument types the commands share: a bad value is one line from argparse, exit 2."""

from __future__ import annotations

import argparse
from datetime import date


def iso_date(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a date is written YYYY-MM-DD, not {raw!r}") from None
