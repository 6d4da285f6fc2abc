"""A model server that streams exactly the pieces a test chose, in OpenAI's SSE shape; for
replies the demo model cannot give (text that looks like a protocol's own control lines)."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Receive, Scope, Send

MODEL = "scripted"


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return _event(
        {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


class ScriptedUpstream:
    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"].endswith("/models"):
            body = {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0}]}
            await self._reply(send, "application/json", json.dumps(body).encode())
            return
        while (await receive()).get("more_body"):
            pass
        events = [_chunk({"role": "assistant", "content": ""})]
        events += [_chunk({"content": piece}) for piece in self.pieces]
        events += [_chunk({}, "stop"), b"data: [DONE]\n\n"]
        await self._reply(send, "text/event-stream", b"".join(events))

    @staticmethod
    async def _reply(send: Send, kind: str, body: bytes) -> None:
        headers = [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
