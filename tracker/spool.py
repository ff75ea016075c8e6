"""The tracker's inbound spool: verified webhooks the database could not take, kept on local
disk until it can.

Each tracker worker process appends to a file of its own in DOSEWISE_SPOOL_DIR, one JSON line
per webhook (what the use case needs: MessageSid, From and Body, or MessageSid, MessageStatus
and ErrorCode, and the instant it arrived), and fsyncs it before Twilio is answered 200: an
answered webhook survives a crash of the process or the machine. The numbers of the entries
replayed go to a second file beside it (`.done`), fsynced too; a crash between a replay and
its mark replays that entry again, which the use cases take as a redelivery.

The worker holds an exclusive flock on its file while it lives. A file nobody holds is an
orphan (its worker died: kill -9, a crash): any other worker of the directory adopts it and
replays it. Once everything in its own file is replayed, a worker empties both files.

Bounded: past DOSEWISE_SPOOL_MAX_MB of its own file, or once its oldest waiting entry is
older than DOSEWISE_SPOOL_MAX_AGE_HOURS, a worker keeps nothing more and the webhook gets 503
(kept entries are never dropped). All file work runs in one thread of the spool's own, never
in the threads the database calls may be stuck in.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import json
import logging
import os
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from services.health import SpoolState
from services.replies import DeliveryStatus, InboundSms
from services.spool_replay import Kept

log = logging.getLogger("dosewise.tracker")

SPOOL_SUFFIX = ".spool"
DONE_SUFFIX = ".done"
SET_ASIDE_SUFFIX = ".rejected"
# what one more webhook may take at most (a 1,600-character SMS in UTF-8, and the rest):
# below this much room the spool says it accepts no more
ROOM_FOR_ONE = 8 * 1024


class SpoolUnusable(OSError):
    """The spool directory cannot be created, written or locked: one line naming it."""


@dataclass(frozen=True)
class SpoolLimits:
    max_bytes: int = 64 * 1024 * 1024
    max_age: timedelta = timedelta(hours=24)


@dataclass
class _File:
    """One spool file this worker reads: its own or an adopted orphan."""

    path: Path
    handle: IO[bytes]  # holds the flock
    done_handle: IO[bytes]
    pending: dict[int, Kept] = field(default_factory=dict)  # by entry number, arrival order
    size: int = 0
    next_number: int = 0

    @property
    def name(self) -> str:
        return self.path.name


class InboundSpool:
    """A worker's spool: `keep` an entry (fsynced), the entries waiting in replay's reach
    (own and adopted), `mark_done` after replay. Thread-safe; callers in the event loop use
    the `run` executor (one thread) for anything that touches the disk."""

    def __init__(self, directory: str | Path, limits: SpoolLimits | None = None) -> None:
        self.directory = Path(directory)
        self.limits = limits or SpoolLimits()
        self._lock = threading.Lock()
        self._own: _File | None = None
        self._adopted: dict[str, _File] = {}
        self._senders: Counter[str] = Counter()  # waiting replies per From
        self._messages: Counter[str] = Counter()  # waiting status callbacks per MessageSid
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="dosewise-spool")
        # set by the replayer while the database refuses its replays: new webhooks are then
        # kept at once, without first waiting for the database to fail them too
        self.database_away = False

    # -- life ----------------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory and this worker's file, locked; SpoolUnusable when it cannot."""
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._own = _open_file(self.directory / f"{name}{SPOOL_SUFFIX}", block=False)
        except OSError as error:
            raise SpoolUnusable(
                f"the spool directory {self.directory} cannot be used: {error.strerror or error}"
            ) from None
        if self._own is None:  # pragma: no cover - a fresh random name is nobody's
            raise SpoolUnusable(f"the spool file {name} is locked by another process")

    def close(self) -> None:
        with self._lock:
            files = [self._own, *self._adopted.values()]
            for spool_file in files:
                if spool_file is not None:
                    _close(spool_file)
            if self._own is not None and not self._own.pending:
                _remove(self._own.path)
            self._own = None
            self._adopted.clear()
        self.executor.shutdown(wait=False)

    # -- keeping -------------------------------------------------------------------------

    def keep(self, entry: Kept, now: datetime) -> bool:
        """Append `entry` and fsync; False (nothing written) when the spool is past a bound.
        OSError when the disk refuses it (nothing kept either)."""
        with self._lock:
            own = self._require_own()
            number = own.next_number
            line = (json.dumps(_as_record(number, entry), ensure_ascii=False) + "\n").encode()
            if own.size + len(line) > self.limits.max_bytes:
                return False
            oldest = _oldest(own)
            if oldest is not None and now - oldest > self.limits.max_age:
                return False
            try:
                _append(own.handle, line)
            except OSError:
                # a line cut short by a full disk must not run into the next one
                with contextlib.suppress(OSError):
                    os.ftruncate(own.handle.fileno(), own.size)
                raise
            own.next_number += 1
            own.size += len(line)
            own.pending[number] = Kept(
                (own.name, number), entry.received_at, entry.sms, entry.status
            )
            self._count(entry, +1)
            return True

    def holds_sender(self, from_number: str) -> bool:
        """Whether a reply of this sender waits: a new one must wait behind it (its order)."""
        return self._senders[from_number] > 0

    def holds_message(self, message_sid: str) -> bool:
        return self._messages[message_sid] > 0

    # -- replaying -----------------------------------------------------------------------

    def waiting(self) -> list[Kept]:
        """Every entry waiting, own and adopted, in arrival order: each file's in the order
        it was written (whatever the clock said meanwhile: it may have been stepped back),
        the files merged by the instants their entries arrived."""
        with self._lock:
            files = [list(each.pending.values()) for each in self._files()]
        return list(heapq.merge(*files, key=lambda entry: entry.received_at))

    def mark_done(self, entries: list[Kept]) -> None:
        """Record `entries` as replayed (fsynced); an emptied file is emptied on disk too."""
        with self._lock:
            by_file: dict[str, list[int]] = {}
            for entry in entries:
                by_file.setdefault(entry.key[0], []).append(entry.key[1])
            for name, numbers in by_file.items():
                spool_file = self._file(name)
                if spool_file is None:
                    continue
                _append(spool_file.done_handle, "".join(f"{n}\n" for n in numbers).encode())
                for number in numbers:
                    done = spool_file.pending.pop(number, None)
                    if done is not None:
                        self._count(done, -1)
                if not spool_file.pending:
                    self._empty(spool_file)

    def set_aside(self, entry: Kept, reason: str) -> None:
        """An entry that can never be replayed (the database refuses its values): copied to
        `<file>.rejected` for an operator, then marked done so it holds up nothing else."""
        with self._lock:
            path = self.directory / f"{entry.key[0]}{SET_ASIDE_SUFFIX}"
            record = {**_as_record(entry.key[1], entry), "reason": reason}
            with path.open("ab") as handle:
                handle.write((json.dumps(record, ensure_ascii=False) + "\n").encode())
                handle.flush()
                os.fsync(handle.fileno())
        self.mark_done([entry])

    def adopt_orphans(self) -> int:
        """Take over the files of workers that died (no flock held on them): how many."""
        adopted = 0
        with self._lock:
            own = self._require_own()
            for path in sorted(self.directory.glob(f"*{SPOOL_SUFFIX}")):
                if path.name == own.name or path.name in self._adopted:
                    continue
                try:
                    orphan = _open_file(path, block=False)
                except OSError:
                    continue  # gone meanwhile (its worker emptied it)
                if orphan is None:
                    continue  # a live worker holds it
                _load(orphan)
                if not orphan.pending:
                    _close(orphan)
                    _remove(path)
                    continue
                log.warning(
                    "spool: adopted %s with %d webhooks of a worker that ended; replaying them",
                    path.name,
                    len(orphan.pending),
                )
                self._adopted[orphan.name] = orphan
                for entry in orphan.pending.values():
                    self._count(entry, +1)
                adopted += 1
        return adopted

    def state(self, now: datetime, replay_failing: str | None = None) -> SpoolState:
        with self._lock:
            entries = [entry for each in self._files() for entry in each.pending.values()]
            own = self._own
            accepting = own is not None and own.size + ROOM_FOR_ONE <= self.limits.max_bytes
            own_oldest = None if own is None else _oldest(own)
        oldest = min((entry.received_at for entry in entries), default=None)
        if own_oldest is not None and now - own_oldest > self.limits.max_age:
            accepting = False
        return SpoolState(
            depth=len(entries),
            oldest_s=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
            accepting=accepting,
            replay_failing=replay_failing if entries else None,
        )

    # -- inside ---------------------------------------------------------------------------

    def _files(self) -> Iterator[_File]:
        if self._own is not None:
            yield self._own
        yield from self._adopted.values()

    def _file(self, name: str) -> _File | None:
        if self._own is not None and self._own.name == name:
            return self._own
        return self._adopted.get(name)

    def _require_own(self) -> _File:
        if self._own is None:
            raise SpoolUnusable("the spool is not open")
        return self._own

    def _count(self, entry: Kept, step: int) -> None:
        if entry.sms is not None:
            self._senders[entry.sms.from_number] += step
            if self._senders[entry.sms.from_number] <= 0:
                del self._senders[entry.sms.from_number]
        elif entry.status is not None:
            self._messages[entry.status.provider_id] += step
            if self._messages[entry.status.provider_id] <= 0:
                del self._messages[entry.status.provider_id]

    def _empty(self, spool_file: _File) -> None:
        """Everything in it replayed: the own file is emptied (spool first, so a crash in
        between leaves numbers that match nothing), an adopted one removed and let go."""
        if spool_file is self._own:
            for handle in (spool_file.handle, spool_file.done_handle):
                os.ftruncate(handle.fileno(), 0)
                os.fsync(handle.fileno())
            spool_file.size = 0
            return
        self._adopted.pop(spool_file.name, None)
        _remove(spool_file.path)
        _close(spool_file)


def _open_file(path: Path, *, block: bool) -> _File | None:
    """The spool file at `path` (created if missing) with its `.done` file, flocked; None when
    another process holds the lock."""
    handle = path.open("ab+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        handle.close()
        return None
    done = path.with_suffix(DONE_SUFFIX).open("ab+")
    _sync_directory(path.parent)
    spool_file = _File(path, handle, done)
    spool_file.size = os.fstat(handle.fileno()).st_size
    return spool_file


def _append(handle: IO[bytes], data: bytes) -> None:
    """Write all of `data` at the end of the file and wait until it is on disk."""
    view = memoryview(data)
    while view:
        view = view[os.write(handle.fileno(), view) :]
    os.fsync(handle.fileno())


def _load(spool_file: _File) -> None:
    """An orphan's entries less those marked done. A last line cut short (the process died
    mid-write, before it answered 200) is skipped."""
    spool_file.handle.seek(0)
    done: set[int] = set()
    spool_file.done_handle.seek(0)
    for number_text in spool_file.done_handle.read().decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            done.add(int(number_text))
    for line in spool_file.handle.read().splitlines():
        try:
            record = json.loads(line)
            number, entry = _from_record(spool_file.name, record)
        except (ValueError, KeyError, TypeError):
            continue
        spool_file.next_number = max(spool_file.next_number, number + 1)
        if number not in done:
            spool_file.pending[number] = entry


def _close(spool_file: _File) -> None:
    for handle in (spool_file.handle, spool_file.done_handle):
        with contextlib.suppress(OSError):
            handle.close()


def _remove(path: Path) -> None:
    for each in (path, path.with_suffix(DONE_SUFFIX)):
        with contextlib.suppress(FileNotFoundError):
            each.unlink()


def _sync_directory(directory: Path) -> None:
    """A new file's name is durable once its directory is synced."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _oldest(spool_file: _File) -> datetime | None:
    return min((entry.received_at for entry in spool_file.pending.values()), default=None)


def _as_record(number: int, entry: Kept) -> dict[str, Any]:
    record: dict[str, Any] = {"n": number, "at": entry.received_at.isoformat()}
    if entry.sms is not None:
        sms = entry.sms
        record.update(kind="sms", sid=sms.provider_id, sender=sms.from_number, body=sms.body)
    elif entry.status is not None:
        status = entry.status
        record.update(
            kind="status",
            sid=status.provider_id,
            status=status.status,
            error_code=status.error_code,
        )
    return record


def _from_record(name: str, record: dict[str, Any]) -> tuple[int, Kept]:
    number = int(record["n"])
    received_at = datetime.fromisoformat(record["at"])
    if received_at.tzinfo is None:
        raise ValueError("an instant without its offset")
    if record["kind"] == "sms":
        sms = InboundSms(str(record["sid"]), str(record["sender"]), str(record["body"]))
        return number, Kept((name, number), received_at, sms=sms)
    code = record.get("error_code")
    status = DeliveryStatus(
        str(record["sid"]), str(record["status"]), None if code is None else int(code)
    )
    return number, Kept((name, number), received_at, status=status)
