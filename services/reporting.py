"""Reporting's use case: keep the adherence report's rollup caught up with the reminders.

The report is exact without it (it aggregates the days still queued live); catching up keeps
that live part, and so the report's time, small.
"""

from __future__ import annotations

from typing import Protocol

# one job run rebuilds at most this many batches; the next run goes on where it stopped
MAX_BATCHES = 20


class ReportRollup(Protocol):
    def refresh(self, limit: int = ...) -> int:
        """Rebuild the rows of up to `limit` queued (person, day) changes in one transaction;
        how many days were rebuilt (0: the queue was empty)."""
        ...


def catch_up_report_rollup(rollup: ReportRollup, max_batches: int = MAX_BATCHES) -> int:
    """Refresh batch by batch until the queue is empty or `max_batches` ran; days rebuilt."""
    total = 0
    for _ in range(max_batches):
        done = rollup.refresh()
        total += done
        if done == 0:
            break
    return total
