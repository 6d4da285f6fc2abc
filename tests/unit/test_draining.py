"""The grace period's end as the core sees it: a reply waiting for the model is interrupted
there, one being sent ends at its next step, and the model's stream is closed either way.

The first tests take ``Drain.pieces`` around a stream of their own; the last ones take the
core's own streaming loop (``ChatService.stream``, which takes the same steps itself) on a real
SQLite database and the demo model, and read back what was stored and booked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from chatgate.core.accounts import Principal
from chatgate.core.draining import Drain
from chatgate.core.errors import ShuttingDown
from chatgate.core.events import ChatEvent, ChatRequest, Delta, Done, ErrorEvent
from chatgate.services import Services
from chatgate.settings import Settings
from chatgate.store.tables import RequestLog, StoredMessage


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


# ---- the core's own loop --------------------------------------------------------------------


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    """The demo model at a piece every 50 ms, so a reply is still running when its time is up."""
    settings = Settings.load(
        data_dir=tmp_path,
        demo_chunk_delay=0.05,
        usage_flush_seconds=3600,
        conversation_titles=False,
    )
    opened = await Services.open(settings)
    yield opened
    await opened.close()


async def alice(services: Services) -> Principal:
    await services.accounts.create_user("alice")
    key, _ = await services.accounts.create_key("alice", label="test")
    return await services.accounts.authenticate(key)


def question() -> ChatRequest:
    return ChatRequest(
        model="demo",
        messages=[{"role": "user", "content": "tell me about stopping servers"}],
        conversation_id="new",
    )


async def stored(services: Services) -> tuple[list[str], list[tuple[str, str | None]]]:
    """The replies stored, and each request's status and error code as booked."""
    await services.writer.flush()
    async with services.db.session() as session:
        replies = await session.scalars(
            select(StoredMessage.content).where(StoredMessage.role == "assistant")
        )
        booked = await session.execute(select(RequestLog.status, RequestLog.error_code))
        return list(replies), [(status, code) for status, code in booked]


async def test_a_core_reply_waiting_for_the_model_at_the_deadline_ends_with_its_text_kept(
    services: Services,
) -> None:
    principal = await alice(services)
    events: list[ChatEvent] = []
    first = asyncio.Event()

    async def reply() -> None:
        async for event in services.chat.stream(principal, question()):
            events.append(event)
            first.set()

    task = asyncio.create_task(reply())
    await first.wait()
    assert services.drain.running == 1
    services.drain.begin(0.01)  # the next piece is 50 ms away: the reply waits for it
    await task
    assert not task.cancelled()
    *pieces, last = events
    assert pieces and all(isinstance(p, Delta) for p in pieces)
    assert isinstance(last, ErrorEvent) and isinstance(last.error, ShuttingDown)
    assert services.drain.running == 0
    said = "".join(p.text for p in pieces if isinstance(p, Delta))
    assert await stored(services) == ([said], [("error", "server_shutting_down")])


async def test_a_core_reply_being_sent_at_the_deadline_ends_before_its_next_piece(
    services: Services,
) -> None:
    principal = await alice(services)
    replying = services.chat.stream(principal, question())
    first = await anext(replying)
    assert isinstance(first, Delta) and services.drain.running == 1
    services.drain.end()  # meanwhile the transport was still sending the first piece
    last = await anext(replying)
    assert isinstance(last, ErrorEvent) and isinstance(last.error, ShuttingDown)
    with pytest.raises(StopAsyncIteration):
        await anext(replying)
    assert services.drain.running == 0
    assert await stored(services) == ([first.text], [("error", "server_shutting_down")])


async def test_a_core_reply_whose_client_leaves_is_cancelled_not_ended_by_the_drain(
    services: Services,
) -> None:
    principal = await alice(services)
    first = asyncio.Event()

    async def reply() -> None:
        async for _ in services.chat.stream(principal, question()):
            first.set()

    task = asyncio.create_task(reply())
    await first.wait()
    task.cancel()  # the client left while the reply waited for the model
    with pytest.raises(asyncio.CancelledError):
        await task
    assert services.drain.running == 0 and not services.drain.ended
    _, booked = await stored(services)
    assert booked == [("cancelled", None)]


async def test_a_core_reply_that_ends_in_the_grace_period_is_whole(services: Services) -> None:
    principal = await alice(services)
    services.drain.begin(30)
    events = [event async for event in services.chat.stream(principal, question())]
    assert isinstance(events[-1], Done)
    assert not any(isinstance(event, ErrorEvent) for event in events)
    await asyncio.wait_for(services.drain.idle(), 1)
    _, booked = await stored(services)
    assert booked == [("ok", None)]
