"""The load generator: keep-alive HTTP/1.1 connections on raw asyncio protocols.

Each virtual user holds one connection and sends its requests one after another. Responses are
parsed by httptools (the C parser uvicorn uses) and kept whole, with the time of the first body
bytes and of the end; they are checked only after the measured window, so checking costs the
window nothing. A generic client (aiohttp, httpx) spends several times more CPU per streamed
chunk, and on two shared cores the load generator must not be what limits the gateway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import httptools


@dataclass(slots=True)
class Sample:
    """One request as the client saw it."""

    started: float
    first: float | None = None
    ended: float | None = None
    status: int = 0
    body: bytes = b""
    error: str | None = None

    @property
    def latency(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    @property
    def ttfb(self) -> float | None:
        return None if self.first is None else self.first - self.started


class _ClientProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sample: Sample | None = None
        self.parts: list[bytes] = []
        self.done: asyncio.Future[None] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("connection closed mid-response"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.done is not None and not self.done.done():
                self.done.set_exception(exc)

    def on_body(self, body: bytes) -> None:
        sample = self.sample
        if sample is not None and sample.first is None:
            sample.first = time.perf_counter()
        self.parts.append(body)

    def on_message_complete(self) -> None:
        sample = self.sample
        if sample is not None:
            sample.ended = time.perf_counter()
            sample.status = self.parser.get_status_code()
            sample.body = b"".join(self.parts)
        self.parts = []
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


class Connection:
    """One keep-alive connection; reconnects when the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._proto: _ClientProtocol | None = None

    async def _ensure(self) -> _ClientProtocol:
        if self._proto is None or self._proto.lost:
            loop = asyncio.get_running_loop()
            _, proto = await loop.create_connection(_ClientProtocol, self.host, self.port)
            self._proto = proto
        return self._proto

    async def send(self, request: bytes, limit: float) -> Sample:
        sample = Sample(time.perf_counter())
        try:
            proto = await self._ensure()
            proto.sample = sample
            proto.parts = []
            proto.done = asyncio.get_running_loop().create_future()
            assert proto.transport is not None
            proto.transport.write(request)
            await asyncio.wait_for(proto.done, limit)
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            sample.error = f"{type(exc).__name__}: {exc}"
            self.close()
        return sample

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None


def build_request(host: str, port: int, path: str, body: bytes, key: str | None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"host: {host}:{port}",
        "content-type: application/json",
        f"content-length: {len(body)}",
    ]
    if key:
        lines.append(f"authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Run:
    """What one load run produced, before checking."""

    samples: list[Sample] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0


async def closed_loop(
    host: str,
    port: int,
    requests: Callable[[int], bytes],
    concurrency: int,
    duration: float,
    *,
    limit: float = 60.0,
    ramp: float = 0.0,
    max_requests: int | None = None,
) -> Run:
    """``concurrency`` users each send requests back to back until ``duration`` has passed
    (each request given ``limit`` seconds).

    ``requests(i)`` gives the bytes of the i-th request of the run. With ``ramp``, users start
    evenly spread over that many seconds (a thousand streams do not arrive in the same
    millisecond). ``max_requests`` caps the total, for runs that must use each key once.
    """
    run = Run(started=time.perf_counter())
    deadline = run.started + ramp + duration
    counter = iter(range(max_requests if max_requests is not None else 1 << 62))

    async def user(n: int) -> None:
        if ramp:
            await asyncio.sleep(ramp * n / concurrency)
        conn = Connection(host, port)
        try:
            while time.perf_counter() < deadline:
                i = next(counter, None)
                if i is None:
                    return
                run.samples.append(await conn.send(requests(i), limit))
        finally:
            conn.close()

    await asyncio.gather(*(user(n) for n in range(concurrency)))
    run.ended = time.perf_counter()
    return run
