"""Argument types the commands share: a bad value is one line from argparse, exit 2."""

from __future__ import annotations

import argparse
from datetime import date

from schemas.dates import checked_date


def port(raw: str) -> int:
    """A TCP port 1-65535: the socket layer would wrap 99999 to 34463 or refuse -1 with a
    traceback."""
    try:
        number = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port number") from None
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{number} is not a port (1-65535)")
    return number


def iso_date(raw: str) -> date:
    try:
        return checked_date(raw)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
