"""The chat routes without FastAPI's middleware stack and router, and the guard in front of the
native API.

The chat routes are plain ASGI apps that parse, authenticate and map their own errors, and need
nothing the stack adds (telemetry hooks, exception middleware, a body limit they enforce
themselves): going to them straight saves about 35 µs of CPU per request. While any middleware
is installed, every request goes through it.

FastAPI reads and decodes a route's body before any dependency runs, authentication included.
So the native and OpenAI APIs (``/api/v1/…`` and ``/v1/…``, public routes aside) authenticate
from the headers here, before the body is read: a caller without a valid credential is refused
without a byte of the body read, and the route reuses the caller found here. The body itself
is limited while it is read by FastAPI's own ``max_body_size``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatgate import request_ids
from chatgate.logs import ACCESS
from chatgate.transports.http_common import authenticate_scope

NATIVE_PREFIX = "/api/v1/"
OPENAI_PREFIX = "/v1/"


class ChatgateApp(FastAPI):
    """FastAPI, with a direct way in for the POST routes named in ``hot_paths``, and the
    native API authenticated before its bodies are read. Every HTTP answer carries the
    request's ``x-request-id`` (see ``chatgate.request_ids``), and with ``access_log`` each
    request is logged once answered."""

    hot_paths: Mapping[str, ASGIApp] = MappingProxyType({})
    public_paths: frozenset[str] = frozenset()
    access_log = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        rid = request_ids.of(scope["headers"])
        request_ids.current.set(rid)
        header = (request_ids.HEADER, rid.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A new message: a response may send one it shares with others (SSEResponse).
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        if self.access_log:
            await self._logged(scope, receive, send_with_id)
        else:
            await self._answer(scope, receive, send_with_id)

    async def _logged(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer, then log the method, path (never the query string, where credentials may
        be), status and duration; a request that fails unanswered is logged with status 500."""
        status = 500
        started = time.perf_counter()

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._answer(scope, receive, send_noting_status)
        finally:
            ms = round((time.perf_counter() - started) * 1000, 1)
            client = scope.get("client")
            ACCESS.info(
                "%s %s %s %.1f ms",
                scope["method"],
                scope["path"],
                status,
                ms,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": ms,
                    "client": client[0] if client else None,
                },
            )

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The chat routes straight, the APIs authenticated first, the rest through FastAPI."""
        path = scope["path"]
        if scope["method"] == "POST" and not self.user_middleware:
            endpoint = self.hot_paths.get(path)
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        if (
            path.startswith((NATIVE_PREFIX, OPENAI_PREFIX))
            and path not in self.public_paths
            and path not in self.hot_paths  # they authenticate before reading, themselves
        ):
            scope["app"] = self
            refusal = await authenticate_scope(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def hot_paths(routes: list[Any]) -> dict[str, ASGIApp]:
    """The POST routes of ``routes`` that have a fixed path and are plain ASGI apps."""
    return {
        r.path: r.app
        for r in routes
        if isinstance(r, Route)
        and r.methods == {"POST"}
        and "{" not in r.path
        and r.app is r.endpoint
    }
