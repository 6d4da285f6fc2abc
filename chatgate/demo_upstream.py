"""The demo model as a stand-alone OpenAI-compatible server (``chatgate demo-upstream``).

A bare ASGI app, so that in benchmarks the upstream costs as little as possible and the
gateway's own overhead is what shows. Its replies are those of ``providers.demo.plan``.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from chatgate.core.errors import InvalidRequest
from chatgate.providers.demo import DEMO_MODEL, DemoPlan, demo_embeddings, plan

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _error(message: str, kind: str, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


class DemoUpstream:
    """An OpenAI-compatible server for the demo model.

    ``delay`` is the pause between streamed chunks; ``api_key``, when set, is required.
    ``requests`` records every body received, for tests that check what was sent upstream.
    """

    def __init__(
        self, delay: float = 0.0, api_key: str | None = None, record: bool = False
    ) -> None:
        self.delay = delay
        self.api_key = api_key
        self.record = record
        self.requests: list[dict[str, Any]] = []
        self.models = [DEMO_MODEL]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope["path"].rstrip("/")
        if self.api_key is not None and not self._authorized(scope):
            await self._respond(
                send,
                401,
                _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
            )
            return
        if path.endswith("/models") and scope["method"] == "GET":
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "chatgate-demo"}
                for m in self.models
            ]
            await self._respond(send, 200, orjson.dumps({"object": "list", "data": data}))
            return
        if scope["method"] == "POST" and path.endswith("/embeddings"):
            await self._embed(receive, send)
            return
        if scope["method"] == "POST" and path.endswith(("/chat/completions", "/completions")):
            await self._complete(path.endswith("/chat/completions"), receive, send)
            return
        await self._respond(send, 404, _error("Not found.", "invalid_request_error"))

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                expected = f"Bearer {self.api_key}".encode()
                return hmac.compare_digest(value, expected)
        return False

    async def _respond(self, send: Send, status: int, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": _JSON})
        await send({"type": "http.response.body", "body": body})

    async def _embed(self, receive: Receive, send: Send) -> None:
        try:
            body = orjson.loads(await _read_body(receive))
            if not isinstance(body, dict):
                raise InvalidRequest("The body must be a JSON object.")
            if self.record:
                self.requests.append(body)
            answer = demo_embeddings(body)
        except (orjson.JSONDecodeError, InvalidRequest) as exc:
            await self._respond(send, 400, _error(str(exc), "invalid_request_error"))
            return
        await self._respond(send, 200, orjson.dumps(answer))

    async def _complete(self, chat: bool, receive: Receive, send: Send) -> None:
        try:
            body = orjson.loads(await _read_body(receive))
            if not isinstance(body, dict):
                raise InvalidRequest("The body must be a JSON object.")
            if self.record:
                self.requests.append(body)
            if body.get("model") not in self.models:
                await self._respond(
                    send,
                    404,
                    _error(
                        f"The model `{body.get('model')}` does not exist.",
                        "invalid_request_error",
                        "model_not_found",
                    ),
                )
                return
            reply = plan(body)
        except (orjson.JSONDecodeError, InvalidRequest) as exc:
            await self._respond(send, 400, _error(str(exc), "invalid_request_error"))
            return
        chunks = Chunks(chat, str(body["model"]))
        if not body.get("stream"):
            await self._respond(send, 200, chunks.whole(reply))
            return
        await send({"type": "http.response.start", "status": 200, "headers": _SSE})
        for part in chunks.stream(
            reply, bool((body.get("stream_options") or {}).get("include_usage"))
        ):
            if self.delay:
                await asyncio.sleep(self.delay)
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


class Chunks:
    """OpenAI wire shapes for a planned reply."""

    def __init__(self, chat: bool, model: str) -> None:
        self.chat = chat
        self.model = model
        self.id = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(8)
        self.created = int(time.time())

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        data = {
            "id": self.id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
        return b"data: " + orjson.dumps(data) + b"\n\n"

    def _choice(self, text: str | None, finish: str | None, **delta: Any) -> dict[str, Any]:
        if self.chat:
            if text is not None:
                delta["content"] = text
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}

    def stream(self, reply: DemoPlan, include_usage: bool) -> list[bytes]:
        parts = []
        if self.chat:
            parts.append(self._event([self._choice("", None, role="assistant")]))
        if reply.tool_calls:
            parts.append(self._event([self._choice(None, None, tool_calls=reply.tool_calls)]))
        parts.extend(self._event([self._choice(p, None)]) for p in reply.pieces)
        parts.append(self._event([self._choice(None if self.chat else "", reply.finish_reason)]))
        if include_usage:
            parts.append(self._event([], usage=reply.usage.as_openai()))
        parts.append(b"data: [DONE]\n\n")
        return parts

    def whole(self, reply: DemoPlan) -> bytes:
        if self.chat:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": reply.text or None,
                "refusal": None,
            }
            if reply.tool_calls:
                message["tool_calls"] = [
                    {k: v for k, v in c.items() if k != "index"} for c in reply.tool_calls
                ]
            choice: dict[str, Any] = {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        else:
            choice = {
                "index": 0,
                "text": reply.text,
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        return orjson.dumps(
            {
                "id": self.id,
                "object": "chat.completion" if self.chat else "text_completion",
                "created": self.created,
                "model": self.model,
                "choices": [choice],
                "usage": reply.usage.as_openai(),
            }
        )
