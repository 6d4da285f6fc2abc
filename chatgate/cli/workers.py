"""``chatgate serve --workers N``: N processes serving the same ports, and their supervisor.

The parent binds the HTTP socket once, upgrades a SQLite database once, and starts N workers as
uvicorn's own supervisor does: spawned processes that each serve the socket they inherit, the
kernel handing each new connection to one of them. Only the first logs the setup link. The
parent watches them: a worker that dies is started again, and one that cannot start stops them
all (it would fail the same way each time). SIGTERM or Ctrl-C to the parent is passed to every
worker, which drains as a single server does, and the parent waits for them; SIGHUP is passed
on when there is a configuration file (each worker re-reads it).

gRPC runs in every worker, on the same port with SO_REUSEPORT: the kernel spreads gRPC
connections as it spreads HTTP ones, a stream is answered by the process that holds its
connection with no relay between processes, and there is no further process to watch.

The workers share their limits through Redis (daily quotas, per-minute rates, streams at
once): counting in each process would let a daily cap of 10 become 10 per worker, so several
workers without ``redis_url`` are refused. The database is shared as by several instances: on
PostgreSQL as by any client, on SQLite in WAL mode, whose writers take turns (a writer waits up
to 5 s for the lock; the write-behind queue keeps its rows and retries beyond that).

``/metrics`` shows the whole service, whichever worker answers: the workers record in
prometheus_client's multiprocess mode, in a directory of the parent's own (made private, named
to every worker as ``PROMETHEUS_MULTIPROC_DIR``, removed when the parent ends, or by the workers
if it was killed). A worker that ends is marked dead there, so that its gauges leave the sums
while its counts stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from multiprocessing.queues import SimpleQueue
from types import FrameType

from prometheus_client.multiprocess import mark_process_dead

from chatgate.cli import serving
from chatgate.core.metrics import MULTIPROCESS_DIR
from chatgate.settings import Settings
from chatgate.store.db import Database

log = logging.getLogger("chatgate")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PR_SET_PDEATHSIG = 1  # prctl(2)


def refusal(settings: Settings) -> str | None:
    """Why these settings cannot run several workers, as one line naming the fix; or None."""
    if settings.redis_url:
        return None
    return (
        f"--workers {settings.workers} needs Redis for the workers to share exact limits: "
        "set CHATGATE_REDIS_URL=redis://HOST:6379/0 (or redis_url in the configuration file), "
        "or serve with --workers 1"
    )


def supervise(settings: Settings, sock: socket.socket) -> int:
    """Run ``settings.workers`` workers on ``sock`` until stopped; the exit code."""
    with sock, _metrics_directory() as metrics:
        return Supervisor(settings, sock, metrics).run()


@contextlib.contextmanager
def _metrics_directory() -> Iterator[str]:
    """A directory only this user can read, for the workers' metrics, named in the environment
    the workers start with (prometheus_client reads it when imported); removed at the end."""
    directory = tempfile.mkdtemp(prefix="chatgate-metrics-")
    before = os.environ.get(MULTIPROCESS_DIR)
    os.environ[MULTIPROCESS_DIR] = directory
    try:
        yield directory
    finally:
        if before is None:
            os.environ.pop(MULTIPROCESS_DIR, None)
        else:
            os.environ[MULTIPROCESS_DIR] = before
        shutil.rmtree(directory, ignore_errors=True)


def _work(
    settings: Settings,
    number: int,
    sock: socket.socket,
    ready: SimpleQueue[int],
    parent: int,
    metrics: str,
) -> None:
    """A worker process: chatgate's server on the inherited socket."""
    from chatgate import logs
    from chatgate.core.metrics import share_between_workers

    logs.setup(settings.log_level, settings.log_format, worker=number)
    orphaned = _clean_up_when_orphaned(parent, metrics)
    _stop_with_parent(parent)
    try:
        share_between_workers(metrics)
        serving.run(settings, sock, first=number == 0, ready=lambda: ready.put(number))
    finally:
        orphaned()


def _clean_up_when_orphaned(parent: int, metrics: str) -> Callable[[], None]:
    """Have this worker remove the metrics' directory as it ends if the parent was killed (and
    so could not). A worker still draining keeps its files open, and every file it writes to
    was made when its app started, so it goes on unharmed.

    uvicorn ends a server told to stop by SIGTERM by raising SIGTERM again once it has drained,
    with the handler it found in place: this one, which removes the directory and then lets
    the signal end the process as before."""

    def remove() -> None:
        if os.getppid() != parent:
            shutil.rmtree(metrics, ignore_errors=True)

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        remove()
        signal.signal(sig, signal.SIG_DFL)
        signal.raise_signal(sig)

    signal.signal(signal.SIGTERM, on_sigterm)
    return remove


def _stop_with_parent(parent: int) -> None:
    """Have Linux send this worker SIGTERM (so that it drains) if the parent dies, even by
    SIGKILL: a worker left behind would keep the port and serve with nobody watching it."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


async def _upgrade(settings: Settings) -> None:
    """What ``serve`` does to a SQLite database, once, before any worker opens it."""
    db = Database(settings.resolved_database_url)
    try:
        if db.is_sqlite:
            await db.upgrade()
    finally:
        await db.close()


class Supervisor:
    def __init__(self, settings: Settings, sock: socket.socket, metrics: str) -> None:
        self.settings = settings
        self.sock = sock
        self.metrics = metrics
        self.context = multiprocessing.get_context("spawn")
        self.ready: SimpleQueue[int] = self.context.SimpleQueue()
        self.workers: list[BaseProcess | None] = [None] * settings.workers
        self.serving: set[int] = set()
        self.signals: list[int] = []
        self.wake = threading.Event()

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        self.signals.append(number)
        self.wake.set()

    def _start(self, number: int) -> None:
        process = self.context.Process(
            target=_work,
            args=(self.settings, number, self.sock, self.ready, os.getpid(), self.metrics),
            name=f"chatgate-worker-{number}",
        )
        process.start()
        self.workers[number] = process

    def run(self) -> int:
        asyncio.run(_upgrade(self.settings))
        handled = [*STOP_SIGNALS, signal.SIGHUP]
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            for number in range(len(self.workers)):
                self._start(number)
            return self._watch()
        finally:
            self._stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _watch(self) -> int:
        announced = False
        while True:
            self.wake.wait(0.5)
            self.wake.clear()
            while self.signals:
                sig = self.signals.pop(0)
                if sig in STOP_SIGNALS:
                    log.info("stopping %d workers", len(self.workers))
                    return 0
                if self.settings.config_file is not None:
                    self._send(signal.SIGHUP)
            while not self.ready.empty():
                self.serving.add(self.ready.get())
            if not announced and len(self.serving) == len(self.workers):
                log.info("%s", serving.listening(self.settings, len(self.workers)))
                announced = True
            for number, process in enumerate(self.workers):
                if process is None or process.exitcode is None:
                    continue
                if number not in self.serving:
                    log.error(
                        "worker %d could not start (exit code %s): stopping the others",
                        number,
                        process.exitcode,
                    )
                    return serving.STARTUP_FAILURE
                log.warning(
                    "worker %d (pid %s) ended with exit code %s: starting another",
                    number,
                    process.pid,
                    process.exitcode,
                )
                self.serving.discard(number)
                self._ended(process)
                self._start(number)

    def _send(self, sig: int) -> None:
        for process in self.workers:
            if process is not None and process.exitcode is None and process.pid is not None:
                os.kill(process.pid, sig)

    def _stop(self) -> None:
        """SIGTERM to every worker, then wait for them to drain (killing any that outstays
        the grace period by far)."""
        self._send(signal.SIGTERM)
        wait = self.settings.shutdown_grace_seconds + 4 * serving.AFTER_GRACE
        for process in self.workers:
            if process is None:
                continue
            process.join(wait)
            if process.exitcode is None:
                log.error("worker pid %s did not stop in %ss: killed", process.pid, wait)
                process.kill()
                process.join()
            self._ended(process)

    def _ended(self, process: BaseProcess) -> None:
        """Take an ended worker's gauges out of ``/metrics`` (its counts stay in the sums)."""
        if process.pid is not None:
            mark_process_dead(process.pid, self.metrics)  # type: ignore[no-untyped-call]
