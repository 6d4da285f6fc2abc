"""The last resort of the socket transports: a request whose handler fails in a way nobody
foresaw is logged and answered alone, in the transport's own shape, while the other requests on
the same connection go on. The failing handlers here are the tests' own, served over real
sockets by the same machinery the services use (``Session`` and the gRPC ``Guard``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from support import LOG_LINES, ServerThread, free_port
from websockets.sync.client import connect

from chatgate.transports.grpc_common import Guard
from chatgate.transports.protos import chatgate_v1_pb2, chatgate_v1_pb2_grpc
from chatgate.transports.ws_session import Session

pb = chatgate_v1_pb2


async def socket_with_a_buggy_request(ws: WebSocket) -> None:
    """``slow:ID`` answers ``done:ID`` after a moment; ``bug:ID`` fails half-way."""
    await ws.accept()
    session = Session(ws, None, 8)  # type: ignore[arg-type]  # no service is used here

    async def slow(rid: str) -> None:
        await asyncio.sleep(0.2)
        await session.send(f"done:{rid}")

    async def buggy(rid: str) -> None:
        await session.send(f"started:{rid}")
        raise RuntimeError("a bug in the handler")

    try:
        async for frame in session.frames():
            kind, _, rid = str(frame).partition(":")
            work = slow(rid) if kind == "slow" else buggy(rid)
            session.start(rid, work, f"crash:{rid}")
    finally:
        await session.close()


@pytest.fixture
def ws_server() -> Iterator[ServerThread]:
    app = Starlette(routes=[WebSocketRoute("/t", socket_with_a_buggy_request)])
    server = ServerThread(app).start()
    yield server
    server.stop()


def test_a_websocket_request_that_fails_unforeseen_is_answered_alone(
    ws_server: ServerThread,
) -> None:
    start = len(LOG_LINES)
    with connect(ws_server.url.replace("http", "ws", 1) + "/t", open_timeout=10) as ws:
        ws.send("slow:1")
        ws.send("bug:2")
        ws.send("slow:3")
        frames = {str(ws.recv(timeout=10)) for _ in range(4)}
        assert frames == {"started:2", "crash:2", "done:1", "done:3"}
        ws.send("slow:4")
        assert ws.recv(timeout=10) == "done:4"
    logged = "\n".join(LOG_LINES[start:])
    assert "a WebSocket request failed" in logged and "a bug in the handler" in logged


class BuggyService(chatgate_v1_pb2_grpc.ChatgateServicer):  # type: ignore[misc]
    async def Chat(
        self, request: chatgate_v1_pb2.ChatRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[chatgate_v1_pb2.ChatEvent]:
        yield pb.ChatEvent(delta=pb.Delta(text="so far"))
        if request.prompt == "bug":
            raise KeyError("a bug in the handler")

    async def ListModels(
        self, request: chatgate_v1_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> chatgate_v1_pb2.ListModelsResponse:
        raise ZeroDivisionError("a bug in the handler")


@pytest.fixture
def grpc_target() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    port = free_port()
    ready = threading.Event()
    done = asyncio.Event()

    async def serve() -> None:
        server = grpc.aio.server(interceptors=[Guard(("chatgate.v1.Chatgate",))])
        chatgate_v1_pb2_grpc.add_ChatgateServicer_to_server(BuggyService(), server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        ready.set()
        await done.wait()
        await server.stop(None)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"127.0.0.1:{port}"
    loop.call_soon_threadsafe(done.set)
    thread.join(10)
    assert not thread.is_alive()
    loop.close()


def test_a_grpc_call_that_fails_unforeseen_ends_internal_and_the_channel_serves_on(
    grpc_target: str,
) -> None:
    start = len(LOG_LINES)
    with grpc.insecure_channel(grpc_target) as channel:
        stub = chatgate_v1_pb2_grpc.ChatgateStub(channel)
        call = stub.Chat(pb.ChatRequest(prompt="bug"))
        assert next(call).delta.text == "so far"
        with pytest.raises(grpc.RpcError) as streamed:
            next(call)
        assert streamed.value.code() == grpc.StatusCode.INTERNAL
        assert "a bug" not in str(streamed.value.details())
        with pytest.raises(grpc.RpcError) as unary:
            stub.ListModels(pb.ListModelsRequest())
        assert unary.value.code() == grpc.StatusCode.INTERNAL
        assert [e.delta.text for e in stub.Chat(pb.ChatRequest(prompt="fine"))] == ["so far"]
    logged = "\n".join(LOG_LINES[start:])
    assert logged.count("a gRPC call failed") == 2
