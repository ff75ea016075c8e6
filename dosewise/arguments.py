"""Argument types the commands share: a bad value is one line from argparse, exit 2."""

from __future__ import annotations

import argparse
from datetime import date

from schemas.dates import checked_date


def iso_date(raw: str) -> date:
    try:
        return checked_date(raw)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
