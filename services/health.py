"""Is the database there and writable, and can the tracker take webhooks? For /healthz,
/readyz and the tracker's metrics.

Two answers, because they differ while the database is away and the tracker spools:
- healthy: the database takes writes (a probe writes, and the spool's replays, if any are
  waiting, are not failing): what an operator's monitoring wants to know;
- ready: a webhook sent now is kept: the database takes it, or the spool has room: what a
  load balancer wants to know, so that it does not take a spooling tracker out of service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from services.ports import UnitOfWork

# no person has this id: the query proves the database answers and has the people table
_NOBODY = -1


def check_database(uow: UnitOfWork) -> None:
    """Returns when a read succeeds; raises whatever the store raises when it does not."""
    with uow:
        uow.people.get(_NOBODY)


class DatabaseProbe(Protocol):
    def check_writable(self) -> None:
        """Returns when a cheap write succeeds; raises a StoreError naming the problem."""


@dataclass(frozen=True)
class SpoolState:
    """The tracker's inbound spool as health reports it."""

    depth: int  # verified webhooks kept, not yet replayed into the database
    oldest_s: float | None  # how long the oldest of them has waited
    accepting: bool  # whether a new one would be kept (under the size and age bounds)
    replay_failing: str | None = None  # the last replay's error line while replays fail


@dataclass(frozen=True)
class Health:
    database_error: str | None  # None: the probe wrote
    spool: SpoolState | None = None  # None: the tracker keeps no spool

    @property
    def database_up(self) -> bool:
        failing = self.spool is not None and self.spool.replay_failing is not None
        return self.database_error is None and not failing

    @property
    def reason(self) -> str | None:
        """Why the database counts as down, for the log (never in the answer: it names the
        database's host)."""
        if self.database_error is not None:
            return self.database_error
        return None if self.spool is None else self.spool.replay_failing

    @property
    def healthy(self) -> bool:
        return self.database_up

    @property
    def ready(self) -> bool:
        return self.database_up or (self.spool is not None and self.spool.accepting)

    def as_dict(self, *, readiness: bool = False) -> dict[str, Any]:
        good = self.ready if readiness else self.healthy
        answer: dict[str, Any] = {
            "status": ("ready" if readiness else "ok") if good else "unavailable",
            "database": "up" if self.database_up else "down",
        }
        if self.spool is not None:
            oldest = self.spool.oldest_s
            answer["spool"] = {
                "depth": self.spool.depth,
                "oldest_s": None if oldest is None else round(oldest, 1),
                "accepting": self.spool.accepting,
            }
        return answer


def check_health(probe: DatabaseProbe, spool: SpoolState | None) -> Health:
    """The probe's write and the spool's state together."""
    try:
        probe.check_writable()
    except Exception as error:  # any failure to write is "down"; the reason is its first line
        text = str(error).strip()
        return Health(text.splitlines()[0] if text else type(error).__name__, spool)
    return Health(None, spool)
