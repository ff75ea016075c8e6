"""A notifier keeps its claims alive: the leases of the messages it holds are renewed while it
works, so the lease can be short and a dead notifier's claims go to another within seconds.

A claim commits 'sending' with a lease (services.sending.claim_due). The worker renews the
leases of every message it still holds (queued, or in flight at the provider) every third of
a lease; when it dies the renewals stop, the leases run out within one lease, and any other
notifier's sweeper takes the messages, asks the provider whether they went, and sends those
that did not.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from services.clock import require_aware
from services.ports import UnitOfWork


def renew_leases(
    uow: UnitOfWork, message_ids: Iterable[int], worker: str, now: datetime, lease: timedelta
) -> set[int]:
    """Extend the leases `worker` holds on `message_ids` to `now + lease`, in one transaction:
    the ids renewed. A message missing from the answer is no longer this worker's to send."""
    require_aware(now)
    ids = list(message_ids)
    if not ids:
        return set()
    with uow:
        renewed = uow.outbox.renew_leases(ids, worker, now + lease, now)
        uow.commit()
    return renewed
