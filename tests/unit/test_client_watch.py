"""``ClientWatch``: the client leaving cancels the watched work and nothing else; any other
cancellation (a server shutting down) still goes through."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chatgate.transports.asgi import ClientWatch


class Connection:
    """What a server's ``receive`` does once the body is read: wait, then ``http.disconnect``."""

    def __init__(self) -> None:
        self.left = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.left.wait()
        return {"type": "http.disconnect"}


async def test_the_client_leaving_ends_the_watched_work_only() -> None:
    connection = Connection()
    asyncio.get_running_loop().call_later(0.01, connection.left.set)
    with ClientWatch(connection.receive) as watch:
        await asyncio.sleep(10)
    assert watch.gone
    await asyncio.sleep(0)  # the task itself goes on, not cancelled


async def test_another_cancellation_goes_through() -> None:
    connection = Connection()

    async def watched() -> None:
        with ClientWatch(connection.receive):
            await asyncio.sleep(10)

    task = asyncio.create_task(watched())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_disconnect_reported_after_the_reply_cancels_nothing() -> None:
    connection = Connection()
    with ClientWatch(connection.receive) as watch:
        await asyncio.sleep(0)
    connection.left.set()  # what a server says once the reply is complete
    await asyncio.sleep(0.01)
    assert not watch.gone
