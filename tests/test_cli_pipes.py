"""The command line as a pipeline's first stage: a reader that stops early is no error to show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ana.yaml"


def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    # `dosewise plan FILE | head -1`: the pipe closes after the first line
    writer = subprocess.Popen(
        [sys.executable, "-m", "dosewise", "plan", str(EXAMPLE), "--date", "2026-11-23"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert writer.stdout is not None and writer.stderr is not None
    first = writer.stdout.readline()
    writer.stdout.close()
    errors = writer.stderr.read().decode()
    assert writer.wait(timeout=60) in (0, 1)
    assert first.startswith(b"Dose plan for Ana Jensen")
    assert "Traceback" not in errors and errors == ""
