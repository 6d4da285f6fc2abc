"""A lean fake OpenAI-compatible upstream for the benchmark.

A raw asyncio protocol with the httptools parser, not an ASGI app, so that in front of it the
gateway's own cost is what shows. It serves two models:

- ``bench``: answers at once; a streamed reply is written chunk by chunk without pausing;
- ``bench-paced``: streams one chunk every ``interval`` seconds, like a real model. One ticker
  serves every open paced stream, so a thousand of them cost the upstream little.

A reply has ``max_tokens`` pieces (``--pieces``, 50, when the request names none), each one
short word: ``reply_pieces(n)`` tells the load generator exactly what to expect. Streams follow
OpenAI's chunk shapes: a role chunk, the pieces, a finish chunk, a usage chunk when
``stream_options.include_usage`` asks for it, and ``data: [DONE]``.

Run it alone with ``python -m bench.upstream --port 8001 [--interval 0.02] [--pieces 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import Any, cast

import httptools
import orjson

INSTANT = "bench"
PACED = "bench-paced"
DEFAULT_PIECES = 50
_WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa")
_MODELS = orjson.dumps(
    {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": 0, "owned_by": "bench"}
            for model in (INSTANT, PACED)
        ],
    }
)


def reply_pieces(n: int) -> list[str]:
    """The ``n`` pieces of every reply: what the load generator checks replies against."""
    return [f"{_WORDS[i % len(_WORDS)]}{i} " for i in range(n)]


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _json_response(status: int, body: bytes) -> bytes:
    headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
    return _head(status, headers) + body


_SSE_HEAD = _head(
    200,
    [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-cache"),
        ("transfer-encoding", "chunked"),
    ],
)
_END = b"0\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Reply:
    """One planned reply in OpenAI's wire shapes."""

    def __init__(self, body: dict[str, Any], default_pieces: int = DEFAULT_PIECES) -> None:
        self.model = str(body.get("model"))
        self.chat = "messages" in body
        n = body.get("max_completion_tokens", body.get("max_tokens")) or default_pieces
        self.pieces = reply_pieces(int(n))
        self.id = f"chatcmpl-bench{time.monotonic_ns()}"
        self.created = int(time.time())
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        prompt = orjson.dumps(body.get("messages") or body.get("prompt") or "")
        self.usage = {
            "prompt_tokens": len(prompt) // 4 + 1,
            "completion_tokens": len(self.pieces),
            "total_tokens": len(prompt) // 4 + 1 + len(self.pieces),
        }

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

    def events(self) -> list[bytes]:
        out = []
        if self.chat:
            out.append(self._event([self._choice("", None, role="assistant")]))
        out.extend(self._event([self._choice(p, None)]) for p in self.pieces)
        out.append(self._event([self._choice(None if self.chat else "", "length")]))
        if self.include_usage:
            out.append(self._event([], usage=self.usage))
        out.append(b"data: [DONE]\n\n")
        return out

    def whole(self) -> bytes:
        text = "".join(self.pieces)
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "length",
            }
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
        return orjson.dumps(
            {
                "id": self.id,
                "object": "chat.completion" if self.chat else "text_completion",
                "created": self.created,
                "model": self.model,
                "choices": [choice],
                "usage": self.usage,
            }
        )


class _Paced:
    """Open paced streams, advanced together by one ticker."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.streams: dict[asyncio.Transport, list[bytes]] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, transport: asyncio.Transport, events: list[bytes]) -> None:
        events.reverse()  # pop() from the end is cheap
        transport.write(_SSE_HEAD + _chunk(events.pop()))
        self.streams[transport] = events
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while self.streams:
            next_at += self.interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            for transport, events in list(self.streams.items()):
                if transport.is_closing():
                    del self.streams[transport]
                    continue
                event = events.pop()
                if events:
                    transport.write(_chunk(event))
                else:
                    transport.write(_chunk(event) + _END)
                    del self.streams[transport]
        self._task = None


class _Connection(asyncio.Protocol):
    def __init__(self, paced: _Paced, default_pieces: int) -> None:
        self.paced = paced
        self.default_pieces = default_pieces
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0].rstrip(b"/")
        if method == b"GET" and path.endswith(b"/models"):
            self.transport.write(_json_response(200, _MODELS))
        elif method == b"POST" and path.endswith(b"/completions"):
            self._complete()
        else:
            self.transport.write(_json_response(404, b'{"error": {"message": "not found"}}'))

    def _complete(self) -> None:
        assert self.transport is not None
        try:
            body = orjson.loads(b"".join(self.body))
            reply = Reply(body, self.default_pieces)
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
            self.transport.write(_json_response(400, b'{"error": {"message": "bad body"}}'))
            return
        if reply.model not in (INSTANT, PACED):
            self.transport.write(_json_response(404, b'{"error": {"message": "no model"}}'))
            return
        if not body.get("stream"):
            self.transport.write(_json_response(200, reply.whole()))
        elif reply.model == PACED:
            self.paced.add(self.transport, reply.events())
        else:
            self.transport.write(_SSE_HEAD)
            for event in reply.events():
                self.transport.write(_chunk(event))
            self.transport.write(_END)


async def serve(host: str, port: int, interval: float, pieces: int = DEFAULT_PIECES) -> None:
    paced = _Paced(interval)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(paced, pieces), host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between paced chunks")
    parser.add_argument(
        "--pieces", type=int, default=DEFAULT_PIECES, help="pieces of a reply that names no max"
    )
    args = parser.parse_args()
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.host, args.port, args.interval, args.pieces))


if __name__ == "__main__":
    main()
