"""The fault suite's figures, gathered while it runs and printed at the end of the session by
tests/conftest.py's terminal summary (pytest captures what a test prints)."""

from __future__ import annotations

from dataclasses import dataclass, field

# what the issue asks of each figure
WANTED = "wanted: 0 lost, 0 duplicates, every STOP honoured, 1 line per failure, < 10 s"


@dataclass
class Figures:
    fault: str
    replies_lost: int | None = None
    duplicates_sent: int | None = None
    stops_honoured: str | None = None  # "1/1"
    lines_per_failure: float | None = None
    failures_logged: int | None = None
    recovered_s: float | None = None
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        def shown(value: object) -> str:
            if value is None:
                return "-"
            return f"{value:.2f}" if isinstance(value, float) else str(value)

        return (
            f"{self.fault:<54} lost {shown(self.replies_lost):>2}  "
            f"dup {shown(self.duplicates_sent):>2}  STOP {shown(self.stops_honoured):>4}  "
            f"lines/failure {shown(self.lines_per_failure):>4} "
            f"({shown(self.failures_logged)} failures)  recovered {shown(self.recovered_s)} s"
            + (f"  [{'; '.join(self.notes)}]" if self.notes else "")
        )


RECORDED: list[Figures] = []


def record(figures: Figures) -> None:
    RECORDED.append(figures)
