"""Stopping without losing a reply: the replies that run, and the deadline after which they end.

When the server is told to stop it takes no new request, and the replies already running may
finish for ``shutdown_grace_seconds``. Those still running then end with ``ShuttingDown``,
raised in the core where it waits for the model's next piece: the core keeps the partial reply
and books its usage as for any error after the first event, and every transport sends the error
in its own shape.

Each reply is one ``Reply`` entered when it starts and left when it ends; ``end`` cancels the
task of each reply that is waiting for the model at that moment, and a reply being sent sees
``ended`` before it asks for its next piece. The core's streaming loop takes these steps in its
own loop (``ChatService.stream``), so serving costs one set entry per reply and a flag set and
cleared around each read of the model, with no generator of the drain's own between the model
and the reply; ``Drain.pieces`` takes the same steps around any other stream.
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


class Reply:
    """One running reply: its task, and whether it waits for the model's next piece right now
    (only then may the end of the grace period cancel the task: anywhere else the cancellation
    would land in the transport)."""

    __slots__ = ("interrupted", "task", "waiting")

    def __init__(self, task: asyncio.Task[object] | None) -> None:
        self.task = task
        self.waiting = False
        self.interrupted = False


class Drain:
    """The replies running in this process, and whether their time is up."""

    def __init__(self) -> None:
        self._running: set[Reply] = set()
        self._idle: asyncio.Event | None = None
        """Made only while someone waits in ``idle``, so that a reply's start and end touch
        no event."""
        self.ended = False
        """The grace period is over: a reply still running ends at its next step."""
        self._timer: asyncio.TimerHandle | None = None

    @property
    def running(self) -> int:
        return len(self._running)

    def enter(self) -> Reply:
        """A reply of the current task starts; ``leave`` it when it ends, whatever the end."""
        reply = Reply(asyncio.current_task())
        self._running.add(reply)
        return reply

    def leave(self, reply: Reply) -> None:
        running = self._running
        running.discard(reply)
        if not running and self._idle is not None:
            self._idle.set()
            self._idle = None

    @staticmethod
    def interrupted(reply: Reply) -> bool:
        """Called where a reply waiting for the model got ``CancelledError``: whether that was
        the end of the grace period (the cancellation is then taken back, and the caller raises
        ``ShuttingDown``) rather than anything else cancelling the task (the client left, the
        server cancels its tasks), which must stay a cancellation."""
        if not reply.interrupted or reply.task is None:
            return False
        reply.task.uncancel()
        return True

    async def pieces(self, source: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
        """``source``'s pieces, until the grace period ends: then ``ShuttingDown``. ``source``
        is closed with it. (The same steps as the core's own loop.)"""
        reply = self.enter()
        try:
            while not self.ended:
                reply.waiting = True
                try:
                    piece = await anext(source)
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError:
                    if not self.interrupted(reply):
                        raise
                    break
                finally:
                    reply.waiting = False
                yield piece
            raise ShuttingDown(MESSAGE)
        finally:
            self.leave(reply)
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
        for reply in list(self._running):
            if reply.waiting and reply.task is not None and not reply.interrupted:
                reply.interrupted = True
                reply.task.cancel()

    async def idle(self) -> None:
        """Return once no reply runs."""
        while self._running:
            if self._idle is None:
                self._idle = asyncio.Event()
            await self._idle.wait()
