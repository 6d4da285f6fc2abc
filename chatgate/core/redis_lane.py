"""One pipelined Redis connection for the quota scripts on the request path.

Every request runs one quota script in Redis and settles with another. Through redis-py's
asyncio client one such call costs about 335,000 CPU instructions here (230,000 on a bare
connection of its own, 128,000 each in a pipeline of 32): connection-pool locks, timeout
contexts and retry wrappers around each command. Commands are packed and replies parsed by
hiredis, Redis's own C library, on a plain asyncio protocol: 62,000 instructions for a lone
call, 15,000 each in a pipeline of 32 (``python -m bench.instructions --store pg-redis``
shows the difference per request). Everything else (seeding a day, scans, the admin's
reads) stays on redis-py.

Replies come back in the order the commands went out, so a pipeline is its commands written
in one piece and as many futures queued in the same order.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

Command = tuple[Any, ...]

# hiredis's stubs give pack_command a one-element tuple; it takes a command of any length.
_pack = cast(Callable[[Command], bytes], hiredis.pack_command)


class _Wire(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(encoding="utf-8")
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(RedisConnectionError("the connection to Redis was lost"))


class RedisLane:
    """``await lane.pipeline([command, ...])`` returns the replies, in order; a command that
    Redis refused raises (``NoScriptError`` for an unknown script) after all have come back."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        self._options: dict[str, Any] = dict(parse_url(url))
        self._connect_timeout = connect_timeout
        self._wire: _Wire | None = None
        self._connecting = asyncio.Lock()

    async def pipeline(self, commands: list[Command]) -> list[Any]:
        wire = self._wire
        if wire is None or wire.transport is None:
            wire = await self._connect()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        wire.waiting.extend(futures)
        assert wire.transport is not None
        wire.transport.write(b"".join([_pack(c) for c in commands]))
        try:
            replies = [await f for f in futures]
        except BaseException:
            for f in futures:  # the connection went: every one of them holds the same error
                if f.done() and not f.cancelled():
                    f.exception()
            raise
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise _error(str(reply))
        return replies

    async def _connect(self) -> _Wire:
        async with self._connecting:
            if self._wire is not None and self._wire.transport is not None:
                return self._wire
            try:
                async with asyncio.timeout(self._connect_timeout):
                    wire = await self._open()
                    self._wire = wire
                    await self._hello()
            except BaseException as exc:
                self.close()
                if isinstance(exc, TimeoutError):
                    raise RedisConnectionError("Redis did not answer in time") from exc
                raise
            return wire

    async def _hello(self) -> None:
        """Log in and pick the database, as the URL says."""
        hello: list[Command] = []
        password = self._options.get("password")
        if password:
            user = self._options.get("username")
            hello.append(("AUTH", user, password) if user else ("AUTH", password))
        if self._options.get("db"):
            hello.append(("SELECT", self._options["db"]))
        if hello:
            await self.pipeline(hello)

    async def _open(self) -> _Wire:
        loop = asyncio.get_running_loop()
        kind = self._options.get("connection_class")
        try:
            if kind is UnixDomainSocketConnection:
                _, wire = await loop.create_unix_connection(_Wire, self._options["path"])
            else:
                host = self._options.get("host", "localhost")
                port = int(self._options.get("port", 6379))
                tls = _tls(self._options) if kind is SSLConnection else None
                _, wire = await loop.create_connection(_Wire, host, port, ssl=tls)
        except OSError as exc:
            raise RedisConnectionError(f"could not connect to Redis: {exc}") from exc
        return wire

    def close(self) -> None:
        if self._wire is not None and self._wire.transport is not None:
            self._wire.transport.close()
        self._wire = None


def _error(message: str) -> ResponseError:
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)


def _tls(options: dict[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
