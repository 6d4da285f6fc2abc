"""The grace period's end as the core sees it: a reply waiting for the model is interrupted
there, one being sent ends at its next step, and the model's stream is closed either way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from chatgate.core.draining import Drain
from chatgate.core.errors import ShuttingDown


class SlowModel:
    """Pieces one after another, the second never coming; knows whether it was closed."""

    def __init__(self) -> None:
        self.closed = False

    async def pieces(self) -> AsyncGenerator[str, None]:
        try:
            yield "first"
            await asyncio.Event().wait()  # the model thinks for ever
            yield "never"
        finally:
            self.closed = True


async def test_a_reply_waiting_for_the_model_ends_with_shutting_down_at_the_deadline() -> None:
    drain, model = Drain(), SlowModel()
    got: list[str] = []

    async def reply() -> None:
        async for piece in drain.pieces(model.pieces()):
            got.append(piece)

    task = asyncio.create_task(reply())
    await asyncio.sleep(0.01)
    assert drain.running == 1
    drain.begin(0.05)
    with pytest.raises(ShuttingDown):
        await task
    assert got == ["first"] and model.closed
    assert drain.running == 0
    assert not task.cancelled()  # the interruption became the error, not a cancellation


async def test_a_reply_being_sent_at_the_deadline_ends_at_its_next_piece() -> None:
    drain = Drain()
    sent = asyncio.Event()
    go_on = asyncio.Event()

    async def model() -> AsyncGenerator[str, None]:
        for piece in ("a", "b", "c"):
            yield piece

    async def reply() -> list[str]:
        got = []
        async for piece in drain.pieces(model()):
            got.append(piece)
            sent.set()
            await go_on.wait()  # a slow client: the transport is still sending
        return got

    task = asyncio.create_task(reply())
    await sent.wait()
    drain.end()
    go_on.set()
    with pytest.raises(ShuttingDown):
        await task


async def test_a_cancellation_that_is_not_the_deadline_stays_a_cancellation() -> None:
    drain, model = Drain(), SlowModel()

    async def reply() -> None:
        async for _ in drain.pieces(model.pieces()):
            pass

    task = asyncio.create_task(reply())
    await asyncio.sleep(0.01)
    task.cancel()  # the client left
    with pytest.raises(asyncio.CancelledError):
        await task
    assert model.closed and drain.running == 0


async def test_replies_that_end_in_the_grace_period_are_untouched() -> None:
    drain = Drain()

    async def model() -> AsyncGenerator[str, None]:
        for piece in ("a", "b"):
            await asyncio.sleep(0.01)
            yield piece

    drain.begin(5)
    assert [piece async for piece in drain.pieces(model())] == ["a", "b"]
    await asyncio.wait_for(drain.idle(), 1)
