"""What the WebSocket protocols share: the credential from the handshake, one ordered writer per
socket, and the requests in flight on it.

Backpressure: every frame is written by the task that produced it, which waits until the
server's transport takes it (uvicorn pauses writers when the client reads slowly). A request
that cannot write does not read more from its upstream, so nothing piles up in memory; the
number of requests in flight on one socket is capped as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine, Hashable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from chatgate.core.errors import PayloadTooLarge
from chatgate.services import Services
from chatgate.transports.http_common import SESSION_COOKIE, bearer_token, check_cookie_site

log = logging.getLogger("chatgate.ws")

# What a write to a socket the client has left raises, depending on the server.
SocketGone = (WebSocketDisconnect, OSError, RuntimeError)


def handshake_token(ws: WebSocket) -> str | None:
    """A credential sent with the handshake: ``Authorization: Bearer``, ``?token=``, else the
    login cookie, for the web page.

    A browser sends the cookie with a handshake that any site's page opens, and the socket
    would then act for the user, so the cookie is taken only from this site's own pages, by
    the rule the HTTP routes apply (``check_cookie_site``, which raises ``PermissionDenied``).
    """
    token = bearer_token(ws) or ws.query_params.get("token") or None
    if token is None:
        token = ws.cookies.get(SESSION_COOKIE) or None
        if token is not None:
            check_cookie_site(ws.scope)
    return token


class Session:
    """One open socket: ordered sends and the request tasks running on it."""

    def __init__(self, ws: WebSocket, services: Services, max_in_flight: int) -> None:
        self.ws = ws
        self.services = services
        self.max_in_flight = max_in_flight
        self.open = True
        self._lock = asyncio.Lock()
        self._tasks: dict[Hashable, asyncio.Task[None]] = {}

    async def send(self, text: str) -> None:
        """Write one frame, after the frames already queued; waits while the client is slow."""
        async with self._lock:
            if not self.open:
                raise WebSocketDisconnect(1006)
            try:
                await self.ws.send_text(text)
            except SocketGone:
                self.open = False
                raise

    async def frames(self) -> AsyncIterator[str | bytes]:
        """Every frame the client sends (text as ``str``, binary as ``bytes``) until it leaves."""
        while self.open:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                self.open = False
                return
            text = message.get("text")
            yield text if text is not None else (message.get("bytes") or b"")

    def too_large(self, frame: str | bytes) -> PayloadTooLarge | None:
        limit = self.services.settings.max_request_bytes
        if len(frame) > limit:
            return PayloadTooLarge(f"A frame may carry at most {limit} bytes.")
        return None

    @property
    def busy(self) -> bool:
        return len(self._tasks) >= self.max_in_flight

    def running(self, key: Hashable) -> bool:
        return key in self._tasks

    def start(
        self, key: Hashable, work: Coroutine[Any, Any, None], crash: str
    ) -> asyncio.Task[None]:
        """Run one request in its own task, so several can stream at once. ``crash`` is the
        frame that ends this request, and only it, if it fails in a way nobody foresaw."""
        task = asyncio.create_task(self._guard(work, crash))
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._tasks.pop(key, None))
        return task

    def cancel(self, key: Hashable) -> bool:
        task = self._tasks.get(key)
        if task is None:
            return False
        task.cancel()
        return True

    async def close(self) -> None:
        """The client left: stop every request on the socket and wait until each has settled."""
        self.open = False
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def end(self, code: int, reason: str = "") -> None:
        """Close the socket from our side, if it is still open."""
        self.open = False
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(*SocketGone):
                await self.ws.close(code, reason)

    async def _guard(self, work: Coroutine[Any, Any, None], crash: str) -> None:
        """A request whose socket has gone just ends; anything else unexpected is logged and
        answered with ``crash``, while the other requests on the socket go on."""
        try:
            await work
        except Exception:
            if self.open:  # a failed send has marked the socket closed: nothing to answer
                log.exception("a WebSocket request failed")
                await self.last_word(crash)
        finally:
            work.close()  # a request cancelled before it ran was never started

    async def last_word(self, frame: str) -> None:
        """Send ``frame`` if the socket is still there; a client that left needs no answer."""
        if self.open:
            with contextlib.suppress(*SocketGone):
                await self.send(frame)
