"""Stopping without losing a reply: the replies that run, and the deadline after which they end.

When the server is told to stop it takes no new request, and the replies already running may
finish for ``shutdown_grace_seconds``. Those still running then end with ``ShuttingDown``,
raised in the core where it waits for the model's next piece: the core keeps the partial reply
and books its usage as for any error after the first event, and every transport sends the error
in its own shape. The cost while serving is one set entry per reply and a flag per piece.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import TypeVar

from chatgate.core.errors import ShuttingDown

log = logging.getLogger("chatgate")
T = TypeVar("T")

MESSAGE = "The server is shutting down: the reply ends here and what it said is kept."


class _Running:
    """One reply between the model's pieces: whether it waits for the next one right now."""

    __slots__ = ("interrupted", "task", "waiting")

    def __init__(self, task: asyncio.Task[object] | None) -> None:
        self.task = task
        self.waiting = False
        self.interrupted = False


class Drain:
    """The replies running in this process, and whether their time is up."""

    def __init__(self) -> None:
        self._running: set[_Running] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.ended = False
        """The grace period is over: a reply still running ends at its next step."""
        self._timer: asyncio.TimerHandle | None = None

    @property
    def running(self) -> int:
        return len(self._running)

    async def pieces(self, source: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
        """``source``'s pieces, until the grace period ends: then ``ShuttingDown``. ``source``
        is closed with it."""
        running = _Running(asyncio.current_task())
        self._running.add(running)
        self._idle.clear()
        try:
            while not self.ended:
                running.waiting = True
                try:
                    piece = await anext(source)
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError:
                    if not running.interrupted or running.task is None:
                        raise
                    running.task.uncancel()
                    break
                finally:
                    running.waiting = False
                yield piece
            raise ShuttingDown(MESSAGE)
        finally:
            self._running.discard(running)
            if not self._running:
                self._idle.set()
            await source.aclose()

    def begin(self, grace: float) -> None:
        """Stop in ``grace`` seconds: called once the server takes no new request."""
        if self._timer is None and not self.ended:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(grace, 0.0), self.end)
            if self._running:
                log.info(
                    "stopping: %d running replies may finish within %ss", len(self._running), grace
                )

    def end(self) -> None:
        """End every running reply now: one waiting for the model is interrupted there, one
        being sent ends as soon as it asks for its next piece."""
        self.ended = True
        if self._running:
            log.warning(
                "stopping: %d replies still running are ended with an error event and kept",
                len(self._running),
            )
        for running in list(self._running):
            if running.waiting and running.task is not None and not running.interrupted:
                running.interrupted = True
                running.task.cancel()

    async def idle(self) -> None:
        """Return once no reply runs."""
        await self._idle.wait()
