"""A server-sent-events response for the chat routes, cheaper than Starlette's own.

Starlette's ``StreamingResponse`` watches for the client leaving in an anyio task group, which
costs a stream more than the chunks it writes. Here the chunks are written from the request's
own task, one ``send`` each. The client leaving is noticed by the request's ``ClientWatch``
(``asgi.py``), which covers the whole request, from the body read to the last chunk: it cancels
the writing task at once, so the chat stream is closed while it waits on the model, the upstream
call is cancelled and the partial reply is stored, as with any other cancellation.
"""

from __future__ import annotations

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
    """Writes ``chunks`` as they come, and closes them however the writing ends.

    Send it under a ``ClientWatch``: it does not watch for the client leaving by itself.
    """

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with aclosing(self.chunks) as chunks:
            await send(self._start)
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send(_END)
