"""A programmable OpenAI-compatible upstream that misbehaves on cue.

It answers with the demo model (``providers.demo.plan`` and the wire shapes of
``demo_upstream.Chunks``), over a small HTTP/1.1 server of its own on asyncio streams, so that it
can do what a well-behaved framework would not: stall before or in the middle of a reply, cut a
chunked body half-way, send garbage, never end, or stop listening altogether.

Each request takes the next ``Act`` from the script (``enqueue``), or ``default`` when the script
is empty. Everything received is recorded in ``seen``; ``busy`` counts the requests being
answered right now and ``connections`` the open TCP connections, so a test can check that the
gateway let go of everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import orjson
from support import free_port

from chatgate.demo_upstream import Chunks
from chatgate.providers.demo import plan

T = TypeVar("T")
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
_HOLD = 60.0  # the longest anything is held open, so a broken test cannot hang the suite


@dataclass(frozen=True, slots=True)
class Act:
    """What to do with one request.

    kind: ``ok``, ``status`` (an error answer), ``stall`` (no answer at all), ``stall_after``
    (``n`` stream parts, then silence), ``cut_after`` (``n`` parts, then the connection is
    dropped mid-body), ``end_after`` (``n`` parts, then a clean but early end),
    ``garbage_after`` (``n`` parts, then ``payload``, then the rest),
    ``huge`` (a content chunk of ``size`` characters after two words), ``endless`` (chunks every
    ``delay`` seconds, forever), ``hang_up`` (close the connection before answering),
    ``finish`` (the demo reply, ending with the finish reason in ``message``).
    """

    kind: str
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    message: str = ""
    n: int = 0
    payload: bytes = b""
    size: int = 0
    delay: float = 0.0
    error: tuple[str | None, str | None, str | None] = (None, None, None)  # type, code, param


def ok(delay: float = 0.0) -> Act:
    return Act("ok", delay=delay)


def status(
    code: int,
    message: str = "upstream trouble",
    *,
    error_type: str | None = None,
    error_code: str | None = None,
    param: str | None = None,
    **headers: str,
) -> Act:
    """An error answer in OpenAI's shape (``type`` as OpenAI sets it unless given)."""
    pairs = tuple((k.replace("_", "-"), v) for k, v in headers.items())
    if error_type is None:
        error_type = "server_error" if code >= 500 else "invalid_request_error"
        error_type = "requests" if code == 429 else error_type
    return Act(
        "status",
        status=code,
        message=message,
        headers=pairs,
        error=(error_type, error_code, param),
    )


def page(code: int, body: bytes, content_type: str = "text/html") -> Act:
    """An error answer that is not OpenAI's (a proxy's or a web server's own page)."""
    return Act("status", status=code, payload=body, headers=(("content-type", content_type),))


def whole_body(payload: bytes) -> Act:
    """A non-streamed 200 whose body is ``payload`` (JSON that is not a reply, hostile values)."""
    return Act("whole_body", payload=payload)


def stall() -> Act:
    return Act("stall")


def stall_after(n: int) -> Act:
    return Act("stall_after", n=n)


def cut_after(n: int) -> Act:
    return Act("cut_after", n=n)


def end_after(n: int) -> Act:
    """``n`` parts, then a clean end of the body: no finish reason, no ``[DONE]``."""
    return Act("end_after", n=n)


def garbage_after(n: int, payload: bytes = b"data: {not json at all\n\n") -> Act:
    return Act("garbage_after", n=n, payload=payload)


def huge(size: int) -> Act:
    return Act("huge", size=size)


def endless(delay: float = 0.01) -> Act:
    return Act("endless", delay=delay)


def hang_up() -> Act:
    return Act("hang_up")


def finish(reason: str) -> Act:
    """The demo reply, but ending with ``reason`` (``content_filter``, ``length``)."""
    return Act("finish", message=reason)


@dataclass(slots=True)
class Seen:
    """One request as received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class _Dropped(Exception):
    """The act ends with the connection dropped."""


class FaultyUpstream:
    def __init__(self, models: tuple[str, ...] = ("demo",)) -> None:
        self.models = list(models)
        self.port = free_port()
        self.script: deque[Act] = deque()
        self.default = ok()
        self.seen: list[Seen] = []
        self.busy = 0
        self.connections = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    # ---- control, from the test's thread ----------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def enqueue(self, *acts: Act) -> FaultyUpstream:
        self.script.extend(acts)
        return self

    def chat_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]

    def refuse(self) -> None:
        """Go down: drop every open connection and refuse new ones until ``listen``."""
        self._call(self._go_down())

    def listen(self) -> None:
        self._call(self._open_listener())

    def start(self) -> FaultyUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("the fake upstream did not start")
        return self

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    # ---- the server, on its own loop --------------------------------------------------------

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._serve())
        self.loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        await self._open_listener()
        self._ready.set()
        await self._stop.wait()
        await self._close_listener()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _open_listener(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._connection, "127.0.0.1", self.port, reuse_address=True
            )

    async def _go_down(self) -> None:
        await self._close_listener()
        for writer in list(self._writers):
            writer.transport.abort()

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            first = await reader.readexactly(1)
            if first == b"\x16":  # a TLS hello: answered in plain HTTP, as such servers do
                writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                raise _Dropped
            while await self._exchange(reader, writer, first):
                first = b""
        except (asyncio.IncompleteReadError, ConnectionError, _Dropped):
            pass
        finally:
            self.connections -= 1
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes = b""
    ) -> bool:
        """Read one request (``first``: its first byte, when already read) and act on it;
        False when the connection is done."""
        head = first + await reader.readuntil(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        url = urlsplit(target)
        body = orjson.loads(raw) if raw else {}
        self.seen.append(Seen(method, url.path, parse_qs(url.query), headers, body))
        if method == "GET" and url.path.endswith("/models"):
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models
            ]
            await _json(writer, 200, {"object": "list", "data": data})
            return True
        act = self.script.popleft() if self.script else self.default
        self.busy += 1
        try:
            return await self._act(act, url.path, body, reader, writer)
        finally:
            self.busy -= 1

    async def _act(
        self,
        act: Act,
        path: str,
        body: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if act.kind == "hang_up":
            raise _Dropped
        if act.kind == "stall":
            await _until_gone(reader)
            raise _Dropped
        if act.kind == "status" and act.payload:
            await _raw(writer, act.status, act.payload, act.headers)
            return True
        if act.kind == "status":
            kind, code, param = act.error
            error = {"message": act.message, "type": kind, "param": param, "code": code}
            await _json(writer, act.status, {"error": error}, act.headers)
            return True
        if act.kind == "whole_body":
            await _json_bytes(writer, 200, act.payload)
            return True
        chat = path.endswith("/chat/completions")
        model = str(body.get("model") or path.split("/deployments/")[-1].split("/")[0])
        reply = plan(body)
        if act.kind == "finish":
            reply.finish_reason = act.message
        chunks = Chunks(chat, model)
        if not body.get("stream"):
            await asyncio.sleep(act.delay)
            await _json_bytes(writer, 200, chunks.whole(reply))
            return True
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        parts = chunks.stream(reply, include_usage)
        if act.kind == "huge":
            parts.insert(3, chunks._event([chunks._choice("x" * act.size, None)]))
        if act.kind == "garbage_after":
            parts.insert(act.n, act.payload)
        await _start_sse(writer)
        if act.kind == "endless":
            await _send(writer, parts[0])
            for _ in range(int(_HOLD / max(act.delay, 0.001))):
                if reader.at_eof() or writer.transport.is_closing():
                    break
                await asyncio.sleep(act.delay)
                await _send(writer, chunks._event([chunks._choice("more ", None)]))
            raise _Dropped
        if act.kind == "end_after":
            parts = parts[: act.n]
        for i, part in enumerate(parts):
            if act.kind in ("stall_after", "cut_after") and i == act.n:
                if act.kind == "stall_after":
                    await _until_gone(reader)
                raise _Dropped
            if act.delay:
                await asyncio.sleep(act.delay)
            await _send(writer, part)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


async def _until_gone(reader: asyncio.StreamReader) -> None:
    """Hold the connection, saying nothing, until the other side closes it."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader.read(1), _HOLD)


async def _json(
    writer: asyncio.StreamWriter,
    code: int,
    data: Any,
    headers: tuple[tuple[str, str], ...] = (),
) -> None:
    await _json_bytes(writer, code, orjson.dumps(data), headers)


async def _json_bytes(
    writer: asyncio.StreamWriter,
    code: int,
    body: bytes,
    headers: tuple[tuple[str, str], ...] = (),
) -> None:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
    writer.write(
        f"HTTP/1.1 {code} {_REASONS.get(code, 'Error')}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode()
        + body
    )
    await writer.drain()


async def _raw(
    writer: asyncio.StreamWriter, code: int, body: bytes, headers: tuple[tuple[str, str], ...]
) -> None:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
    writer.write(
        f"HTTP/1.1 {code} {_REASONS.get(code, 'Error')}\r\ncontent-length: {len(body)}\r\n"
        f"{extra}\r\n".encode()
        + body
    )
    await writer.drain()


async def _start_sse(writer: asyncio.StreamWriter) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )
    await writer.drain()


async def _send(writer: asyncio.StreamWriter, part: bytes) -> None:
    writer.write(b"%x\r\n%s\r\n" % (len(part), part))
    await writer.drain()
