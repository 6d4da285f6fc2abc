"""SIGTERM to ``chatgate serve`` while replies run: no new request is taken, running replies go
on for ``shutdown_grace_seconds``, and those still running then end with an error event in
their transport's shape; every reply is stored and every request booked."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import openai
import pytest
from databases import process_env
from serve_process import Serve, chatgate
from sqlalchemy import func, select
from support import free_port
from websockets.sync.client import connect as ws_connect

from chatgate.settings import Settings
from chatgate.store.db import Database
from chatgate.store.tables import RequestLog, StoredMessage, UsageDaily
from chatgate.transports.protos import chatgate_v1_pb2, chatgate_v1_pb2_grpc

pb = chatgate_v1_pb2

STREAMS = 20
GRACE = 3
# uvicorn ends by the signal it was sent once it has stopped, as a program that had not caught
# it would (so the exit status says SIGTERM); the parent of workers ends with 0.
STOPPED = (0, -signal.SIGTERM)


def _env(data: Path) -> dict[str, str]:
    """Slow demo replies (about 20 s each), and a short grace period."""
    return process_env(
        CHATGATE_DATA_DIR=str(data),
        CHATGATE_DEMO_CHUNK_DELAY="0.5",
        CHATGATE_SHUTDOWN_GRACE_SECONDS=str(GRACE),
        CHATGATE_USAGE_FLUSH_SECONDS="3600",  # only the stop writes them
        CHATGATE_DEFAULT_DAILY_REQUESTS="100",
        CHATGATE_CONVERSATION_TITLES="false",
        PYTHONPATH=str(Path(__file__).parents[2]),
        COLUMNS="200",
    )


@dataclass
class Stored:
    replies: list[str]
    statuses: list[str]
    requests: int
    """The day's count of requests."""
    logged_tokens: int
    """The completion tokens of the request-log rows."""
    day_tokens: int
    """The completion tokens of the day's totals."""


def _stored(data: Path) -> Stored:
    """What the database holds once the server has stopped."""

    async def read() -> Stored:
        db = Database(Settings.load(data_dir=data).resolved_database_url)
        try:
            async with db.session() as session:
                replies = await session.scalars(
                    select(StoredMessage.content).where(StoredMessage.role == "assistant")
                )
                statuses = await session.scalars(select(RequestLog.status))
                logged = await session.scalar(select(func.sum(RequestLog.completion_tokens)))
                day = (
                    await session.execute(
                        select(
                            func.sum(UsageDaily.requests), func.sum(UsageDaily.completion_tokens)
                        )
                    )
                ).one()
                return Stored(
                    list(replies),
                    list(statuses),
                    int(day[0] or 0),
                    int(logged or 0),
                    int(day[1] or 0),
                )
        finally:
            await db.close()

    return asyncio.run(read())


def _stream(url: str, key: str, n: int, started: threading.Barrier, ends: list[str]) -> None:
    api = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)
    text = ""
    try:
        stream = api.chat.completions.create(
            model="demo",
            messages=[{"role": "user", "content": f"question {n} about stopping"}],
            stream=True,
            extra_body={"conversation_id": "new"},
        )
        for i, chunk in enumerate(stream):
            if i == 1:
                started.wait(120)
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        ends.append("whole")
    except openai.APIError as exc:
        ends.append(f"error: {exc.message}" if text else f"error before any text: {exc!r}")
    except Exception as exc:  # the stream cut without a word
        ends.append(f"cut: {exc!r}")


@pytest.mark.timeout(300)
def test_sigterm_during_20_streams_ends_them_with_an_error_event_and_loses_none(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = _env(data)
    chatgate(env, "users", "create", "alice")
    key = chatgate(env, "keys", "create", "--user", "alice").strip()
    server = Serve(env, tmp_path / "serve.log", "--grpc-port", "0")
    try:
        server.wait_ready()
        started = threading.Barrier(STREAMS + 1)
        ends: list[str] = []
        clients = [
            threading.Thread(target=_stream, args=(server.url, key, n, started, ends))
            for n in range(STREAMS)
        ]
        for client in clients:
            client.start()
        started.wait(120)  # every stream has said something
        server.terminate()
        time.sleep(1)
        with pytest.raises(httpx.ConnectError):  # no new request is taken
            httpx.get(server.url + "/healthz", timeout=5)
        for client in clients:
            client.join(60)
        assert server.wait(60) in STOPPED, "\n".join(server.lines())
    finally:
        server.stop()

    # Each reply was still running when the grace period ended: each got the error event.
    assert len(ends) == STREAMS
    assert all(end.startswith("error: The server is shutting down") for end in ends), ends
    stored = _stored(data)
    assert len(stored.replies) == STREAMS and all(stored.replies)  # the partial replies are kept
    assert stored.statuses == ["error"] * STREAMS  # every request is booked, none left in flight
    # The tokens they used are booked; the requests are given back, as for any failure that
    # asks the client to send the request again.
    assert stored.logged_tokens == stored.day_tokens >= 2 * STREAMS
    assert stored.requests == 0


@pytest.mark.timeout(300)
def test_replies_that_end_within_the_grace_period_end_whole(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = _env(data) | {
        "CHATGATE_DEMO_CHUNK_DELAY": "0.02",
        "CHATGATE_SHUTDOWN_GRACE_SECONDS": "60",
    }
    chatgate(env, "users", "create", "alice")
    key = chatgate(env, "keys", "create", "--user", "alice").strip()
    server = Serve(env, tmp_path / "serve.log", "--grpc-port", "0")
    try:
        server.wait_ready()
        started = threading.Barrier(3)
        ends: list[str] = []
        clients = [
            threading.Thread(target=_stream, args=(server.url, key, n, started, ends))
            for n in range(2)
        ]
        for client in clients:
            client.start()
        started.wait(120)
        server.terminate()
        for client in clients:
            client.join(60)
        assert server.wait(60) in STOPPED
    finally:
        server.stop()
    assert ends == ["whole", "whole"]
    stored = _stored(data)
    assert len(stored.replies) == 2 and stored.statuses == ["ok", "ok"]
    assert stored.requests == 2


def _websocket(url: str, key: str, started: threading.Barrier) -> dict[str, Any]:
    """A reply asked over the native WebSocket: the frame that ends it."""
    ws_url = url.replace("http", "ws", 1) + "/api/v1/ws"
    headers = {"Authorization": f"Bearer {key}"}
    with ws_connect(ws_url, additional_headers=headers, open_timeout=30) as ws:
        question = {"role": "user", "content": "a question by WebSocket"}
        ws.send(json.dumps({"type": "chat", "id": "r1", "model": "demo", "messages": [question]}))
        deltas = 0
        while True:
            frame: dict[str, Any] = json.loads(ws.recv(timeout=60))
            if frame["type"] != "delta":
                return frame
            deltas += 1
            if deltas == 2:
                started.wait(120)


def _native_stream(url: str, key: str, started: threading.Barrier, **body: Any) -> list[str]:
    """A question to a new conversation on the native API: the kinds and data of its events."""
    payload = {"content": "a question by the native API", **body}
    events: list[str] = []
    headers = {"Authorization": f"Bearer {key}"}
    path = url + "/api/v1/conversations/new/messages"
    with (
        httpx.Client(headers=headers, timeout=60) as client,
        client.stream("POST", path, json=payload) as r,
    ):
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("event: "):
                events.append(line[7:])
                if events.count("delta") == 2:
                    started.wait(120)
            elif line.startswith("data: ") and events and events[-1] == "error":
                events.append(line[6:])
    return events


def _grpc(port: int, key: str, started: threading.Barrier) -> tuple[str, str]:
    """A native gRPC stream: its status code and the error event it ended with."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = chatgate_v1_pb2_grpc.ChatgateStub(channel)
        question = pb.Message(role="user", content="a question by gRPC")
        call = stub.Chat(
            pb.ChatRequest(model="demo", messages=[question]),
            metadata=(("authorization", f"Bearer {key}"),),
        )
        deltas, last = 0, ""
        try:
            for event in call:
                kind = event.WhichOneof("event")
                if kind == "delta":
                    deltas += 1
                    if deltas == 2:
                        started.wait(120)
                else:
                    last = str(event)
        except grpc.RpcError as exc:
            return exc.code().name, last  # type: ignore[attr-defined]
        return "OK", last


@pytest.mark.timeout(300)
def test_every_transport_gets_the_error_event_in_its_own_shape(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = _env(data)
    chatgate(env, "users", "create", "alice")
    key = chatgate(env, "keys", "create", "--user", "alice").strip()
    grpc_port = free_port()
    server = Serve(env, tmp_path / "serve.log", "--grpc-port", str(grpc_port))
    try:
        server.wait_ready()
        started = threading.Barrier(5)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            websocket = pool.submit(_websocket, server.url, key, started)
            native = pool.submit(_native_stream, server.url, key, started)
            resumable = pool.submit(_native_stream, server.url, key, started, resumable=True)
            over_grpc = pool.submit(_grpc, grpc_port, key, started)
            started.wait(120)
            server.terminate()
            ends = [f.result(60) for f in (websocket, native, resumable, over_grpc)]
        assert server.wait(60) in STOPPED, "\n".join(server.lines())
    finally:
        server.stop()
    frame, native_events, resumable_events, (code, last) = ends
    assert frame["type"] == "error" and frame["code"] == "server_shutting_down"
    for events in (native_events, resumable_events):
        assert events[-2] == "error", events
        assert json.loads(events[-1])["error"]["code"] == "server_shutting_down"
    assert code == "UNAVAILABLE" and "server_shutting_down" in last
    stored = _stored(data)
    assert stored.statuses == ["error"] * 4
    assert len(stored.replies) == 2 and all(stored.replies)  # the two conversations' replies
