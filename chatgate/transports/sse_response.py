"""A server-sent-events response for the chat routes, cheaper than Starlette's own.

Starlette's ``StreamingResponse`` watches for the client leaving in an anyio task group, which
costs a stream more than the chunks it writes. Here the chunks are written from the request's
own task, one ``send`` each, and a single waiter on ``receive()`` notices ``http.disconnect``:
it cancels the writing task at once, so the chat stream is closed while it waits on the model,
the upstream call is cancelled and the partial reply is stored, as with any other cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_START = {"type": "http.response.start", "status": 200, "headers": _HEADERS}
_END = {"type": "http.response.body", "body": b"", "more_body": False}


class SSEResponse(Response):
    """Writes ``chunks`` as they come; stops writing (and closes them) when the client goes."""

    media_type = "text/event-stream"

    def __init__(
        self, chunks: AsyncGenerator[bytes, None], headers: dict[str, str] | None = None
    ) -> None:
        self.chunks = chunks
        self.status_code = 200
        self.background = None
        self._start = _START
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        if extra:  # e.g. x-ratelimit-*: a start message of its own, only when there are some
            self._start = {**_START, "headers": [*_HEADERS, *extra]}
        self.raw_headers = [*_HEADERS, *extra] if headers else _HEADERS
        self._writing = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        writer = asyncio.current_task()
        assert writer is not None
        waiter = asyncio.create_task(self._cancel_when_gone(receive, writer))
        try:
            async with aclosing(self.chunks) as chunks:
                await send(self._start)
                async for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send(_END)
        except asyncio.CancelledError:
            if not waiter.done() or waiter.cancelled() or not waiter.result():
                raise
            if writer.uncancel():
                raise
        finally:
            self._writing = False
            waiter.cancel()

    async def _cancel_when_gone(self, receive: Receive, writer: asyncio.Task[object]) -> bool:
        """Wait for ``http.disconnect``; True when it came while the reply was being written."""
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self._writing:
            return False
        writer.cancel()
        return True
