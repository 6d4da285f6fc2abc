"""One timer keeps the deadline of every read of a stream: an overdue read is cancelled as a
timeout, time between reads never counts, and a cancel from elsewhere stays a cancel."""

from __future__ import annotations

import asyncio

import pytest

from chatgate.providers.deadlines import ReadDeadlines


async def test_a_read_past_its_deadline_is_cancelled_as_a_timeout() -> None:
    loop = asyncio.get_running_loop()
    deadlines = ReadDeadlines()
    deadlines.start(loop.time() + 0.05)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(5)
    assert deadlines.expired()
    deadlines.close()


async def test_time_between_reads_does_not_count() -> None:
    loop = asyncio.get_running_loop()
    deadlines = ReadDeadlines()
    for _ in range(3):
        deadlines.start(loop.time() + 0.05)
        await asyncio.sleep(0.01)  # the read: well within its deadline
        deadlines.stop()
        await asyncio.sleep(0.08)  # the client taking its time: past the old deadline
    assert not deadlines.expired()
    deadlines.close()


async def test_each_read_gets_its_own_later_deadline() -> None:
    loop = asyncio.get_running_loop()
    deadlines = ReadDeadlines()
    started = loop.time()
    for _ in range(6):  # six reads of 30 ms, each allowed 50 ms: 180 ms in all
        deadlines.start(loop.time() + 0.05)
        await asyncio.sleep(0.03)
        deadlines.stop()
    assert loop.time() - started > 0.15
    assert not deadlines.expired()
    deadlines.close()


async def test_an_earlier_deadline_replaces_a_later_one() -> None:
    loop = asyncio.get_running_loop()
    deadlines = ReadDeadlines()
    deadlines.start(loop.time() + 60)
    deadlines.stop()
    deadlines.start(loop.time() + 0.05)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(5)
    assert deadlines.expired()
    deadlines.close()


async def test_a_cancel_from_elsewhere_is_not_taken_for_a_timeout() -> None:
    loop = asyncio.get_running_loop()
    deadlines = ReadDeadlines()
    outcome: list[bool] = []

    async def reader() -> None:
        deadlines.start(loop.time() + 60)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            outcome.append(deadlines.expired())
            raise
        finally:
            deadlines.close()

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert outcome == [False]
