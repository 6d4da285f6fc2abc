"""The ``transports`` scenario: the same reply over every protocol the gateway speaks.

A gateway of its own (gRPC on, ``compat_model`` set to the lean upstream's ``bench`` model, the
run's store) answers the same question over each transport, with the client a program of that
protocol would use: aiohttp for HTTP, ``websockets`` for the WebSockets, ``grpc.aio`` for gRPC
(one channel per run, its calls multiplexed on it). Each virtual user holds its connection and
asks again as soon as a reply is complete. Over the measured window the gateway's CPU time is
read from ``/proc``, so the figures are the gateway's CPU ms per reply and the time to first
token (request sent to the first piece of text; for the protocols that answer in one piece, the
whole reply), with each transport's ratio to SSE at the same concurrency.

Every reply has the upstream's ``pieces`` pieces: the streamed OpenAI protocols, the native
ones and seq ask for ``max_tokens``; the protocols that cannot (ask, ChatAPI, EasyBackend) get
the upstream's default, set to the same number. A reply counts only when its text is exactly
the expected one and it ended as its protocol ends a complete reply; anything else is an error.

Some protocols store every exchange (ask over WebSocket and gRPC, EasyBackend: a new
conversation each, titled by the model in the background), and some answer whole (ChatAPI,
EasyBackend). Reference runs of the OpenAI API in the same shapes (``sse-stored`` with
``"conversation_id": "new"``, ``json``, ``json-stored``) give each a like-for-like ratio too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import grpc
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from bench.procs import Proc
from bench.runner import _Spy, percentiles
from bench.upstream import INSTANT, reply_pieces
from chatgate.transports.protos import (
    chat_pb2,
    chat_pb2_grpc,
    chatgate_v1_pb2,
    chatgate_v1_pb2_grpc,
)

QUESTION = "Tell me something, please."
END, ERR = "<|end|>", "<|err|>"
LIMIT = 60.0  # seconds a reply may take


@dataclass(slots=True)
class Reply:
    """One reply as the client saw it."""

    started: float
    first: float | None = None
    ended: float | None = None
    pieces: list[str] = field(default_factory=list)
    end: str | None = None  # how the protocol said the reply is complete
    error: str | None = None

    def piece(self, text: str) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        self.pieces.append(text)

    def verdict(self, text: str) -> str | None:
        """Why the reply is wrong, or None."""
        if self.error is not None:
            return self.error
        if not self.end:
            return "the reply did not end as complete"
        got = "".join(self.pieces)
        if got != text:
            return f"wrong text ({len(got)} of {len(text)} characters): {got[:60]!r}"
        return None


@dataclass(frozen=True, slots=True)
class Gateway:
    """Where the transports reach a gateway, and what every reply must say."""

    host: str
    port: int
    grpc_port: int
    key: str
    pieces: int
    compression: str | None  # what the WebSocket clients offer: "deflate" or None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"


class Shared:
    """What the users of one run share: an HTTP connection pool and a gRPC channel."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._session: aiohttp.ClientSession | None = None
        self._channel: grpc.aio.Channel | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0)
            timeout = aiohttp.ClientTimeout(total=LIMIT)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self._session

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(f"{self.gw.host}:{self.gw.grpc_port}")
        return self._channel

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._channel is not None:
            await self._channel.close()


class Client(Protocol):
    async def ask(self, n: int) -> Reply: ...

    async def close(self) -> None: ...


# ---- HTTP: the OpenAI API (SSE and whole), ChatAPI, EasyBackend ----------------------------


class OpenAI:
    """``POST /v1/chat/completions``, streamed (SSE) or whole, maybe stored."""

    def __init__(self, gw: Gateway, shared: Shared, *, stream: bool, stored: bool) -> None:
        body: dict[str, Any] = {
            "model": INSTANT,
            "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": gw.pieces,
            "stream": stream,
        }
        if stored:
            body["conversation_id"] = "new"
        self.payload = orjson.dumps(body)
        self.headers = {**gw.auth, "Content-Type": "application/json"}
        self.url = gw.url("/v1/chat/completions")
        self.session = shared.session
        self.stream = stream

    async def ask(self, n: int) -> Reply:
        reply = Reply(time.perf_counter())
        async with self.session.post(self.url, data=self.payload, headers=self.headers) as resp:
            if resp.status != 200:
                reply.error = f"HTTP {resp.status}: {(await resp.read())[:200]!r}"
            elif self.stream:
                await _read_sse(resp, reply)
            else:
                data = orjson.loads(await resp.read())
                choice = data["choices"][0]
                reply.piece(choice["message"]["content"])
                reply.end = choice.get("finish_reason")
        reply.ended = time.perf_counter()
        return reply

    async def close(self) -> None:
        return None


async def _read_sse(resp: aiohttp.ClientResponse, reply: Reply) -> None:
    """Events up to ``data: [DONE]``; the reply ends complete only with a finish reason."""
    finish = None
    async for line in resp.content:
        if not line.startswith(b"data: "):
            continue
        data = line[6:].strip()
        if data == b"[DONE]":
            reply.end = finish
            return
        event = orjson.loads(data)
        if "error" in event:
            reply.error = f"error event: {data[:200]!r}"
            return
        for choice in event.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text:
                reply.piece(text)
            finish = choice.get("finish_reason") or finish
    reply.error = "the stream ended without data: [DONE]"


class ChatAPI:
    """``GET /api?q=``: ``{"statu": true, "message": TEXT}``."""

    def __init__(self, gw: Gateway, shared: Shared) -> None:
        self.url = gw.url("/api?q=" + quote(QUESTION))
        self.headers = gw.auth
        self.session = shared.session

    async def ask(self, n: int) -> Reply:
        reply = Reply(time.perf_counter())
        async with self.session.get(self.url, headers=self.headers) as resp:
            body = await resp.read()
        data = orjson.loads(body) if body else {}
        if resp.status != 200 or data.get("statu") is not True:
            reply.error = f"HTTP {resp.status}: {body[:200]!r}"
        else:
            reply.piece(data["message"])
            reply.end = "statu"
        reply.ended = time.perf_counter()
        return reply

    async def close(self) -> None:
        return None


class EasyBackend:
    """``POST /ask/new``: ``{"message", "conversation_id", "parent_id"}``, a new stored
    conversation each time."""

    def __init__(self, gw: Gateway, shared: Shared) -> None:
        self.url = gw.url("/ask/new")
        self.payload = orjson.dumps({"prompt": QUESTION, "parent_id": "new"})
        self.headers = {**gw.auth, "Content-Type": "application/json"}
        self.session = shared.session

    async def ask(self, n: int) -> Reply:
        reply = Reply(time.perf_counter())
        async with self.session.post(self.url, data=self.payload, headers=self.headers) as resp:
            body = await resp.read()
        if resp.status != 200:
            reply.error = f"HTTP {resp.status}: {body[:200]!r}"
        else:
            data = orjson.loads(body)
            reply.piece(data["message"])
            if data.get("conversation_id") and data.get("parent_id"):
                reply.end = "ids"
        reply.ended = time.perf_counter()
        return reply

    async def close(self) -> None:
        return None


# ---- WebSocket: native, seq and ask -------------------------------------------------------


async def _socket(gw: Gateway, path: str) -> ClientConnection:
    return await connect(
        gw.url(path, "ws"),
        additional_headers=gw.auth,
        compression="deflate" if gw.compression == "deflate" else None,
        max_size=None,
        open_timeout=LIMIT,
    )


class NativeSocket:
    """``/api/v1/ws``: a ``chat`` frame, ``delta`` frames, then ``done``."""

    def __init__(self, gw: Gateway, ws: ClientConnection) -> None:
        self.gw = gw
        self.ws = ws

    @classmethod
    async def open(cls, gw: Gateway, shared: Shared) -> NativeSocket:
        return cls(gw, await _socket(gw, "/api/v1/ws"))

    async def ask(self, n: int) -> Reply:
        frame = {
            "type": "chat",
            "id": n,
            "model": INSTANT,
            "prompt": QUESTION,
            "max_tokens": self.gw.pieces,
        }
        reply = Reply(time.perf_counter())
        await self.ws.send(orjson.dumps(frame).decode())
        while True:
            event = orjson.loads(await self.ws.recv(decode=False))
            kind = event.get("type")
            if event.get("id") != n:
                reply.error = f"a frame for another request: {event!r:.200}"
                break
            if kind == "delta":
                reply.piece(event["text"])
            elif kind == "done":
                reply.end = event.get("finish_reason")
                break
            else:
                reply.error = f"{kind} frame: {event!r:.200}"
                break
        reply.ended = time.perf_counter()
        return reply

    async def close(self) -> None:
        await self.ws.close()


class SeqSocket:
    """``/compat/ws/seq``: ``{seq, data}`` with the parameters sent (``max_tokens``), pieces as
    the upstream sends them (``origin_stream``); the last message has the finish reason."""

    def __init__(self, gw: Gateway, ws: ClientConnection) -> None:
        self.gw = gw
        self.ws = ws

    @classmethod
    async def open(cls, gw: Gateway, shared: Shared) -> SeqSocket:
        return cls(gw, await _socket(gw, "/compat/ws/seq"))

    async def ask(self, n: int) -> Reply:
        frame = {
            "seq": n,
            "data": {
                "messages": [{"role": "user", "content": QUESTION}],
                "model": INSTANT,
                "origin_stream": True,
                "openai_parameter": False,
                "max_tokens": self.gw.pieces,
            },
        }
        reply = Reply(time.perf_counter())
        await self.ws.send(orjson.dumps(frame).decode())
        while True:
            message = orjson.loads(await self.ws.recv(decode=False))
            if message.get("code") != 0 or message.get("seq") != n:
                reply.error = f"seq message: {message!r:.200}"
                break
            data = message["data"]
            if data["contents"]:
                reply.piece(data["contents"])
            if data.get("finish_reason"):
                reply.end = data["finish_reason"]
                break
        reply.ended = time.perf_counter()
        return reply

    async def close(self) -> None:
        await self.ws.close()


class AskSocket:
    """``/compat/ws/ask``: ``<|ask|>$new$new$PROMPT``, text pieces, then ``<|end|>$…``."""

    frame = f"<|ask|>$new$new${QUESTION}"

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, gw: Gateway, shared: Shared) -> AskSocket:
        return cls(await _socket(gw, "/compat/ws/ask"))

    async def ask(self, n: int) -> Reply:
        reply = Reply(time.perf_counter())
        await self.ws.send(self.frame)
        while True:
            text = await self.ws.recv(decode=True)
            if text.startswith(END):
                reply.end = text
                break
            if text.startswith(ERR):
                reply.error = text[:200]
                break
            reply.piece(text)
        reply.ended = time.perf_counter()
        return reply

    async def close(self) -> None:
        await self.ws.close()


# ---- gRPC: chatgate.v1 and chat.Chat/Ask --------------------------------------------------


class NativeGrpc:
    """``chatgate.v1.Chatgate/Chat``: ``delta`` events, then ``done``."""

    def __init__(self, gw: Gateway, shared: Shared) -> None:
        self.stub = chatgate_v1_pb2_grpc.ChatgateStub(shared.channel)  # type: ignore[no-untyped-call]
        self.request = chatgate_v1_pb2.ChatRequest(
            model=INSTANT, prompt=QUESTION, max_tokens=gw.pieces
        )
        self.metadata = (("authorization", f"Bearer {gw.key}"),)

    async def ask(self, n: int) -> Reply:
        reply = Reply(time.perf_counter())
        try:
            async for event in self.stub.Chat(self.request, metadata=self.metadata):
                kind = event.WhichOneof("event")
                if kind == "delta":
                    if event.delta.text:
                        reply.piece(event.delta.text)
                elif kind == "done":
                    reply.end = event.done.finish_reason
                else:
                    reply.error = f"error event: {event.error.code} {event.error.message}"
        except grpc.aio.AioRpcError as exc:
            reply.error = f"gRPC {exc.code().name}: {exc.details()}"
        reply.ended = time.perf_counter()
        return reply

    async def close(self) -> None:
        return None


class AskGrpc:
    """``chat.Chat/Ask``: text pieces, then ``<|end|>$…``; a new stored conversation each."""

    def __init__(self, gw: Gateway, shared: Shared) -> None:
        self.stub = chat_pb2_grpc.ChatStub(shared.channel)  # type: ignore[no-untyped-call]
        self.request = chat_pb2.askrequest(prompt=QUESTION, conversation_id="new", parent_id="new")
        self.metadata = (("authorization", f"Bearer {gw.key}"),)

    async def ask(self, n: int) -> Reply:
        reply = Reply(time.perf_counter())
        try:
            async for message in self.stub.Ask(self.request, metadata=self.metadata):
                text = message.response
                if text.startswith(END):
                    reply.end = text
                elif text.startswith(ERR):
                    reply.error = text[:200]
                else:
                    reply.piece(text)
        except grpc.aio.AioRpcError as exc:
            reply.error = reply.error or f"gRPC {exc.code().name}: {exc.details()}"
        reply.ended = time.perf_counter()
        return reply

    async def close(self) -> None:
        return None


# ---- the transports, and one measured run of one -------------------------------------------


async def _made(client: Client) -> Client:
    return client


Opener = Callable[[Gateway, Shared], Awaitable[Client]]


@dataclass(frozen=True, slots=True)
class Transport:
    name: str
    what: str
    open: Opener
    streamed: bool = True
    stored: bool = False
    like: str = "sse"  # the reference run of the same shape
    reference: bool = False  # the OpenAI API in a shape to compare with, not a transport


def _openai(stream: bool, stored: bool) -> Opener:
    return lambda gw, shared: _made(OpenAI(gw, shared, stream=stream, stored=stored))


TRANSPORTS: dict[str, Transport] = {
    t.name: t
    for t in (
        Transport("sse", "SSE, POST /v1/chat/completions", _openai(True, False)),
        Transport("ws", "native WebSocket /api/v1/ws", NativeSocket.open),
        Transport("grpc", "gRPC chatgate.v1.Chatgate/Chat", lambda gw, s: _made(NativeGrpc(gw, s))),
        Transport(
            "grpc-ask",
            "gRPC chat.Chat/Ask (stored)",
            lambda gw, s: _made(AskGrpc(gw, s)),
            stored=True,
            like="sse-stored",
        ),
        Transport("ws-seq", "WebSocket /compat/ws/seq", SeqSocket.open),
        Transport(
            "ws-ask",
            "WebSocket /compat/ws/ask (stored)",
            AskSocket.open,
            stored=True,
            like="sse-stored",
        ),
        Transport(
            "chatapi",
            "ChatAPI GET /api?q= (whole)",
            lambda gw, s: _made(ChatAPI(gw, s)),
            streamed=False,
            like="json",
        ),
        Transport(
            "easybackend",
            "EasyBackend POST /ask/new (whole, stored)",
            lambda gw, s: _made(EasyBackend(gw, s)),
            streamed=False,
            stored=True,
            like="json-stored",
        ),
        Transport(
            "sse-stored",
            "SSE with conversation_id new (reference)",
            _openai(True, True),
            stored=True,
            like="sse-stored",
            reference=True,
        ),
        Transport(
            "json",
            "POST /v1/chat/completions whole (reference)",
            _openai(False, False),
            streamed=False,
            like="json",
            reference=True,
        ),
        Transport(
            "json-stored",
            "whole, conversation_id new (reference)",
            _openai(False, True),
            streamed=False,
            stored=True,
            like="json-stored",
            reference=True,
        ),
    )
}


@dataclass
class Window:
    replies: list[Reply] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0


async def _ask(client: Client, n: int) -> Reply:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(LIMIT):
            return await client.ask(n)
    except (
        OSError,
        TimeoutError,
        aiohttp.ClientError,
        WebSocketException,
        orjson.JSONDecodeError,
        KeyError,
        TypeError,
    ) as exc:
        return Reply(started, ended=time.perf_counter(), error=f"{type(exc).__name__}: {exc}")


async def _closed_loop(
    clients: list[Client], seconds: float, counter: list[int], window: Window | None
) -> None:
    """Each client asks again as soon as its reply is complete, until ``seconds`` pass; the
    replies go to ``window`` (a warm-up keeps none)."""
    deadline = time.perf_counter() + seconds

    async def user(client: Client) -> None:
        while time.perf_counter() < deadline:
            counter[0] += 1
            reply = await _ask(client, counter[0])
            if window is not None:
                window.replies.append(reply)

    await asyncio.gather(*(user(c) for c in clients))


async def _peak_rss(proc: Proc, peak: list[float]) -> None:
    while True:
        peak[0] = max(peak[0], proc.rss_mb())
        await asyncio.sleep(0.2)


async def measure(
    gw: Gateway,
    proc: Proc,
    transport: Transport,
    concurrency: int,
    duration: float,
    warmup: float,
    profile: str | None = None,
) -> dict[str, Any]:
    """``concurrency`` users of ``transport`` (connected, then warmed up for ``warmup``
    seconds) asking for ``duration`` seconds; the gateway's CPU and memory over that window.
    With ``profile`` (a file ending in ``.svg`` or ``.txt``), py-spy records that window."""
    shared = Shared(gw)
    clients: list[Client] = []
    counter = [0]
    window = Window()
    try:
        clients = list(
            await asyncio.gather(*(transport.open(gw, shared) for _ in range(concurrency)))
        )
        if warmup:
            await _closed_loop(clients, warmup, counter, None)
        spy = None
        if profile is not None:
            kind = "raw" if profile.endswith(".txt") else "flamegraph"
            argv = ["py-spy", "record", "--pid", str(proc.pid), "--duration"]
            argv += [str(max(1, round(duration))), "--rate", "200", "--nonblocking"]
            spy = _Spy([*argv, "--format", kind, "--output", profile])
        rss_before = proc.rss_mb()
        peak = [rss_before]
        sampler = asyncio.create_task(_peak_rss(proc, peak))
        cpu0 = proc.cpu_seconds()
        window.started = time.perf_counter()
        await _closed_loop(clients, duration, counter, window)
        window.ended = time.perf_counter()
        cpu = proc.cpu_seconds() - cpu0
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        if spy is not None:
            await spy.wait()
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
        await shared.close()
    result = _summary(gw, proc, transport, concurrency, window, cpu, rss_before, peak[0])
    result["profile"] = profile
    return result


def _summary(
    gw: Gateway,
    proc: Proc,
    transport: Transport,
    concurrency: int,
    window: Window,
    cpu: float,
    rss_before: float,
    rss_peak: float,
) -> dict[str, Any]:
    text = "".join(reply_pieces(gw.pieces))
    verdicts = [r.verdict(text) for r in window.replies]
    good = [r for r, why in zip(window.replies, verdicts, strict=True) if why is None]
    errors = [why for why in verdicts if why is not None]
    seconds = window.ended - window.started
    n = len(window.replies)
    ttft = percentiles([r.first - r.started for r in good if r.first is not None])
    latency = percentiles([r.ended - r.started for r in good if r.ended is not None])
    return {
        "scenario": "transports",
        "target": f"gateway:{transport.name}",
        "transport": transport.name,
        "what": transport.what,
        "reference": transport.reference,
        "like": transport.like,
        "stored_each": transport.stored,
        "concurrency": concurrency,
        "stream": transport.streamed,
        "pieces": gw.pieces,
        "model": INSTANT,
        "ws_compression": gw.compression,
        "requests": n,
        "ok": len(good),
        "rejected": 0,
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
        "seconds": round(seconds, 3),
        "rps": round(n / seconds, 1) if seconds else 0.0,
        "latency_ms": latency,
        "ttfb_ms": ttft,  # the first piece of text, as the table's first-chunk column
        "ttft_ms": ttft,
        "cpu_ms_per_req": round(cpu * 1000 / n, 3) if n else None,
        "cpu_cores": round(cpu / seconds, 3) if seconds else None,
        "rss_mb_before": round(rss_before, 1),
        "rss_mb_peak": round(rss_peak, 1),
        "rss_mb_after": round(proc.rss_mb(), 1),
        "profile": None,
    }


def ratios(results: list[dict[str, Any]]) -> None:
    """Each transport's CPU per reply and TTFT p50 against SSE's, and against the reference
    run of its own shape, at the same concurrency (written into the results)."""
    by = {(r["transport"], r["concurrency"]): r for r in results if "transport" in r}
    for r in by.values():
        for key, ref in (("sse", "sse"), ("like", r["like"])):
            base = by.get((ref, r["concurrency"]))
            if base is None:
                continue
            r[f"cpu_vs_{key}"] = _ratio(r["cpu_ms_per_req"], base["cpu_ms_per_req"])
            r[f"ttft_p50_vs_{key}"] = _ratio(r["ttft_ms"]["p50"], base["ttft_ms"]["p50"])


def _ratio(mine: float | None, theirs: float | None) -> float | None:
    if mine is None or not theirs:
        return None
    return round(mine / theirs, 2)
