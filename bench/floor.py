"""The floor: the least a Python relay on the same stack does for the same reply.

A raw ASGI app on uvicorn (uvloop, httptools, one worker) with one pooled aiohttp session, as
``PERFORMANCE.md`` describes the cheapest candidate: the body parsed once with orjson and
posted upstream; a streamed reply passed through read by read, each read's events parsed with
orjson for what accounting would need; a whole reply parsed once. No auth, quota, usage record,
storage, deadline, error handling or check of the stream: whatever the gateway spends above
this is its own work. ``python -m bench.instructions --floor`` counts it beside the gateway.

    python -m bench.floor --port 8001 --upstream http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import orjson
import uvicorn

_SSE = [(b"content-type", b"text/event-stream")]
_JSON = [(b"content-type", b"application/json")]


class Floor:
    def __init__(self, upstream: str) -> None:
        self.url = upstream.rstrip("/") + "/chat/completions"
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["path"] == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        else:
            await self._relay(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
                self.session = aiohttp.ClientSession(connector=connector)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _relay(self, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = orjson.loads(body)
        assert self.session is not None
        async with self.session.post(
            self.url, data=orjson.dumps(request), headers={"content-type": "application/json"}
        ) as resp:
            if not request.get("stream"):
                raw = await resp.read()
                orjson.loads(raw)
                await send({"type": "http.response.start", "status": 200, "headers": _JSON})
                await send({"type": "http.response.body", "body": raw})
                return
            await send({"type": "http.response.start", "status": 200, "headers": _SSE})
            async for data in resp.content.iter_any():
                for event in data.split(b"\n\n"):
                    if event.startswith(b"data: {"):
                        orjson.loads(event[6:])
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="the upstream's base URL, ending in /v1")
    opts = p.parse_args()
    uvicorn.run(
        Floor(opts.upstream),
        port=opts.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
