"""How long to wait after a failure, and what a stretch of failures looks like in the log.

Every service talks to the one database; while it is away each of them fails every attempt.
They wait ever longer between attempts (capped, so recovery is noticed soon, and jittered, so
that the services and their workers do not all come back at the same instant), and say so in
one line per failed attempt, with the error's first line: never the traceback (which carries
the SQL and its parameters, phone numbers among them) except at DEBUG.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime

from services.logs import error_line


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter: after the n-th failure in a row, half to all
    of min(cap, first * 2^(n-1)) seconds."""

    first_s: float = 0.5
    cap_s: float = 5.0

    def ceiling(self, failures: int) -> float:
        exponent = min(max(failures - 1, 0), 32)
        return min(self.cap_s, self.first_s * 2.0**exponent)

    def delay(self, failures: int, rng: random.Random) -> float:
        ceiling = self.ceiling(failures)
        return ceiling * rng.uniform(0.5, 1.0)


@dataclass
class Outage:
    """One service's view of the database: failures in a row, since when, and the wait before
    the next attempt. `failed` logs the failure's one line and returns the wait; `recovered`
    logs one line when the first attempt after a stretch of failures succeeds."""

    log: logging.Logger
    service: str
    backoff: Backoff = field(default_factory=Backoff)
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0
    since: datetime | None = None
    # what the line at the end of a stretch of failures says came back
    back: str = "the database answers again"

    @property
    def away(self) -> bool:
        return self.failures > 0

    def failed(self, what: str, error: BaseException, now: datetime) -> float:
        """One WARNING line: what failed and the error's first line, and when the next
        attempt is; the traceback at DEBUG. The seconds to wait."""
        self.failures += 1
        if self.since is None:
            self.since = now
        wait = self.backoff.delay(self.failures, self.rng)
        self.log.warning(
            "%s: %s failed: %s; trying again in %.1f s",
            self.service,
            what,
            error_line(error),
            wait,
        )
        self.log.debug("%s: %s failed", self.service, what, exc_info=error)
        return wait

    def recovered(self, now: datetime) -> None:
        """Ends a stretch of failures with one INFO line; nothing when there was none."""
        if not self.failures:
            return
        lasted = (now - self.since).total_seconds() if self.since is not None else 0.0
        self.log.info(
            "%s: %s after %.1f s and %d failed attempt%s",
            self.service,
            self.back,
            lasted,
            self.failures,
            "" if self.failures == 1 else "s",
        )
        self.failures = 0
        self.since = None
