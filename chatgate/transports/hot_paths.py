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

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from chatgate.transports.http_common import authenticate_scope

NATIVE_PREFIX = "/api/v1/"
OPENAI_PREFIX = "/v1/"


class ChatgateApp(FastAPI):
    """FastAPI, with a direct way in for the POST routes named in ``hot_paths``, and the
    native API authenticated before its bodies are read."""

    hot_paths: Mapping[str, ASGIApp] = MappingProxyType({})
    public_paths: frozenset[str] = frozenset()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
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
