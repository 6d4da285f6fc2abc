"""A deadline for every read of a stream, kept by one timer instead of one per read.

A streamed reply is read hundreds of times, each read bounded (the first token, then the idle
gap, never past the total). ``asyncio.timeout`` around each read schedules and cancels a timer
every time, which costs about as much as parsing the chunk. Here one timer stays armed: when it
fires it cancels the read in progress if that read is overdue, and otherwise re-arms itself for
the deadline of the read in progress (or waits for the next read to arm it).
"""

from __future__ import annotations

import asyncio
import math

# Loop timers may fire this early; a read is overdue once its deadline is this close.
_EARLY = 0.001


class ReadDeadlines:
    """Use as ``start(deadline)`` / ``await read()`` / ``stop()``; on ``CancelledError`` from
    the read, ``expired()`` says whether it was this deadline (then it is a timeout)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = math.inf
        self._deadline = math.inf  # of the read in progress; inf between reads
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._fired = False

    def start(self, deadline: float) -> None:
        """A read begins that must be done by ``deadline`` (loop time)."""
        self._deadline = deadline
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._cancelling = task.cancelling()
        if deadline < self._armed_at:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self._loop.call_at(deadline, self._fire)
            self._armed_at = deadline

    def stop(self) -> None:
        """The read is done; the time until the next one is not the upstream's."""
        self._deadline = math.inf

    def expired(self) -> bool:
        """After the read raised ``CancelledError``: True when this deadline cancelled it and
        nobody else asked for a cancel as well (which must then go on)."""
        if not self._fired or self._task is None:
            return False
        self._fired = False
        return self._task.uncancel() <= self._cancelling

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed_at = math.inf

    def _fire(self) -> None:
        self._handle = None
        self._armed_at = math.inf
        deadline = self._deadline
        if deadline == math.inf or self._task is None:
            return  # between reads: the next read arms the timer again
        if self._loop.time() >= deadline - _EARLY:
            self._fired = True
            self._task.cancel()
        else:
            self._handle = self._loop.call_at(deadline, self._fire)
            self._armed_at = deadline
