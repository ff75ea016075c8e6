"""N uvicorn worker processes, each listening on a socket of its own on the same port.

uvicorn's own `--workers` hands one listening socket to all its workers. Every worker wakes
for a new connection, and the first one awake accepts every connection waiting (asyncio
accepts up to the backlog per wake-up). So a burst of keep-alive connections can land on one
worker while the others idle, and the tracker runs at one core's speed on several. Here each
worker binds its own socket with SO_REUSEPORT, and the kernel spreads new connections over
them by a hash of their addresses.

The supervisor restarts a worker that dies, stops every worker on SIGINT or SIGTERM, and
stops altogether when a worker cannot start (a broken app or port would fail the same way
again). A worker that keeps dying soon after its start is restarted ever later (restart_delay),
so a crash loop does not spend a core on starting Pythons.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, MutableSequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from dosewise.connection_share import ConnectionShare, EvenConnections
from dosewise.errors import UserError

log = logging.getLogger("dosewise.tracker")
# a worker's own failures go where uvicorn's own startup errors go
_worker_log = logging.getLogger("uvicorn.error")

# where the kernel spreads connections over the sockets of one port (Linux; not macOS)
BALANCES_CONNECTIONS = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
STOP_TIMEOUT_S = 30.0
# prometheus_client's name for the directory of its multiprocess mode
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_WATCH_INTERVAL_S = 0.5
# a worker that ran this long before it died counts as having run well: no delay
STABLE_AFTER_S = 60.0
FIRST_RESTART_DELAY_S = 0.5
MAX_RESTART_DELAY_S = 30.0


def restart_delay(early_deaths: int) -> float:
    """How long to wait before replacing a worker after `early_deaths` deaths in a row, each
    within STABLE_AFTER_S of its start: none for the first, then doubling up to a limit."""
    if early_deaths <= 1:
        return 0.0
    return min(MAX_RESTART_DELAY_S, FIRST_RESTART_DELAY_S * 2.0 ** (early_deaths - 2))


@dataclass(frozen=True)
class Serving:
    """What each worker runs: uvicorn's app factory (an import string) on host:port, with
    these further uvicorn.Config options."""

    app_factory: str
    host: str
    port: int
    options: Mapping[str, Any] = field(default_factory=dict)


def serve(serving: Serving, workers: int) -> int:
    """Run `workers` processes until SIGINT or SIGTERM; the exit status (1: a worker could
    not start). Check the port first (check_port_is_free)."""
    supervisor = _Supervisor(serving, workers)
    previous = {
        number: signal.signal(number, supervisor.on_signal)
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with _shared_metrics():
            return supervisor.run()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def _shared_metrics() -> Iterator[None]:
    """prometheus_client's multiprocess mode for the workers: each writes its counters to
    files in one directory, and /metrics, whichever worker answers it, sums them all (else
    each scrape would read one worker's counters, and they would seem to jump backwards). A
    directory the operator named in PROMETHEUS_MULTIPROC_DIR is used as it is."""
    if os.environ.get(METRICS_DIR_VARIABLE):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="dosewise-metrics-") as directory:
        os.environ[METRICS_DIR_VARIABLE] = directory  # the spawned workers inherit it
        try:
            yield
        finally:
            del os.environ[METRICS_DIR_VARIABLE]


def check_port_is_free(host: str, port: int) -> None:
    """One clear line now, rather than a worker's failure later; and never a silent share of
    the port with another tracker that also listens with SO_REUSEPORT."""
    probe = socket.socket(_family(host))
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as error:
        reason = "is in use" if error.errno == errno.EADDRINUSE else f"cannot be used ({error})"
        raise UserError(f"{host}:{port} {reason}") from None
    finally:
        probe.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port with SO_REUSEPORT: one of the port's several listeners."""
    sock = socket.socket(_family(host))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(False)
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


@dataclass
class _Slot:
    """One of the N workers: its current process (None while waiting to restart it)."""

    process: BaseProcess | None
    started_at: float
    early_deaths: int = 0
    restart_at: float = 0.0


class _Supervisor:
    def __init__(self, serving: Serving, workers: int) -> None:
        self._serving = serving
        self._workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._stop = threading.Event()
        # each worker's open connections (dosewise.connection_share), in shared memory
        self._connections = self._context.RawArray("i", workers)

    def on_signal(self, number: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping the workers", signal.Signals(number).name)
        self._stop.set()

    def run(self) -> int:
        slots = [_Slot(self._start(number), time.monotonic()) for number in range(self._workers)]
        status = 0
        while not self._stop.wait(_WATCH_INTERVAL_S):
            now = time.monotonic()  # the outermost loop reads the clock
            for number, slot in enumerate(slots):
                if self._stop.is_set():
                    break
                if slot.process is None:
                    if now >= slot.restart_at:
                        slot.process, slot.started_at = self._start(number), now
                elif not slot.process.is_alive():
                    if slot.process.exitcode == STARTUP_FAILURE:
                        log.error("a worker could not start; stopping")
                        status = 1
                        self._stop.set()
                        break
                    self._replace(slot, number, now)
        _stop_all([slot.process for slot in slots if slot.process is not None])
        return status

    def _replace(self, slot: _Slot, number: int, now: float) -> None:
        died = slot.process
        assert died is not None
        early = now - slot.started_at < STABLE_AFTER_S
        slot.early_deaths = slot.early_deaths + 1 if early else 0
        delay = restart_delay(slot.early_deaths)
        log.warning(
            "worker %s ended (exit %s); starting another in %.1f s", died.pid, died.exitcode, delay
        )
        slot.process, slot.restart_at = None, now + delay
        self._connections[number] = 0  # its connections ended with it
        if delay == 0:
            slot.process, slot.started_at = self._start(number), now

    def _start(self, number: int) -> BaseProcess:
        share = (self._connections, number)
        process = self._context.Process(target=_worker, args=(self._serving, share), daemon=False)
        # started with SIGINT blocked (the mask is inherited): a Ctrl-C reaches the whole
        # process group, and a worker still importing would die of it with a traceback; the
        # supervisor gets it and stops the workers with SIGTERM, which they handle
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        return process


def _stop_all(processes: list[BaseProcess]) -> None:
    for process in processes:
        if process.is_alive():
            process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
    for process in processes:
        process.join(STOP_TIMEOUT_S)
        if process.is_alive():
            log.warning("worker %s did not stop in %.0f s; killing it", process.pid, STOP_TIMEOUT_S)
            process.kill()
            process.join()


class SignalledServer(uvicorn.Server):
    """uvicorn stopped by SIGINT or SIGTERM as usual, but without re-raising the signal once
    it has stopped, as uvicorn's own handling does: the process then exits with its own status
    (0) rather than being killed by the signal (143), and `dosewise run` gets to stop its
    scheduler and notifier cleanly after the server returns."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        stopping = (signal.SIGINT, signal.SIGTERM)
        previous = {signum: signal.signal(signum, self.handle_exit) for signum in stopping}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


class _EvenServer(uvicorn.Server):
    """A worker's uvicorn, its app behind EvenConnections (dosewise.connection_share)."""

    def __init__(self, config: uvicorn.Config, share: ConnectionShare) -> None:
        super().__init__(config)
        self._share = share

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # the app is loaded by now, and each connection's protocol takes it from the config
        self.config.loaded_app = EvenConnections(
            self.config.loaded_app, self._share, self._open_connections
        )
        await super().startup(sockets)

    def _open_connections(self) -> int:
        # one already told `connection: close` is closing: it must not count, or every answer
        # before it is gone would close another
        return sum(not each.transport.is_closing() for each in self.server_state.connections)


def _worker(serving: Serving, share: tuple[MutableSequence[int], int]) -> None:
    """One worker process: its own listening socket, one uvicorn server."""
    config = uvicorn.Config(
        serving.app_factory,
        factory=True,
        host=serving.host,
        port=serving.port,
        **serving.options,
    )
    server = _EvenServer(config, ConnectionShare(*share))
    try:
        sock = listening_socket(serving.host, serving.port)
    except OSError as error:
        _worker_log.error("%s:%s: %s", serving.host, serving.port, error)
        sys.exit(STARTUP_FAILURE)
    try:
        server.run(sockets=[sock])
    except Exception as error:  # the app factory's own failure (uvicorn passes it through)
        if server.started:
            raise
        _worker_log.error("the worker could not start: %s", error)
    if not server.started:
        sys.exit(STARTUP_FAILURE)
