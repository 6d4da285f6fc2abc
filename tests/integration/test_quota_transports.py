"""The same exactness on every transport: 50 requests at once against 10 remaining give exactly
10 answers, over the native WebSocket protocol and over gRPC, as over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import websockets
from support import Gateway, free_port

from chatgate.transports.protos import chatgate_v1_pb2, chatgate_v1_pb2_grpc


async def _ws_one(url: str, key: str, gate: asyncio.Event) -> str:
    headers = {"Authorization": f"Bearer {key}"}
    async with websockets.connect(url, additional_headers=headers) as ws:
        await gate.wait()
        ask = {"type": "chat", "id": "q", "model": "demo", "prompt": "hi"}
        await ws.send(json.dumps(ask))
        while True:
            event = json.loads(await ws.recv())
            if event["type"] == "done":
                return "ok"
            if event["type"] == "error":
                return str(event["code"])


async def _ws_fifty(url: str, key: str) -> list[str]:
    gate = asyncio.Event()
    tasks = [asyncio.create_task(_ws_one(url, key, gate)) for _ in range(50)]
    await asyncio.sleep(0.5)
    gate.set()
    return list(await asyncio.gather(*tasks))


def test_fifty_at_once_over_websocket_give_exactly_ten(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(default_daily_requests=10)
    url = f"ws://127.0.0.1:{gateway.port}/api/v1/ws"
    outcomes = asyncio.run(_ws_fifty(url, gateway.key("alice")))
    assert outcomes.count("ok") == 10
    assert outcomes.count("insufficient_quota") == 40


def test_fifty_at_once_over_grpc_give_exactly_ten(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(default_daily_requests=10, grpc_port=free_port())
    key = gateway.key("alice")
    request = chatgate_v1_pb2.ChatRequest(
        model="demo", messages=[chatgate_v1_pb2.Message(role="user", content="hi")]
    )
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = chatgate_v1_pb2_grpc.ChatgateStub(channel)

        def one(_: int) -> str:
            try:
                events = list(stub.Chat(request, metadata=(("authorization", f"Bearer {key}"),)))
            except grpc.RpcError as error:
                return str(error.code())  # type: ignore[attr-defined]
            return "ok" if events[-1].WhichOneof("event") == "done" else "broken"

        with ThreadPoolExecutor(max_workers=50) as pool:
            outcomes = list(pool.map(one, range(50)))
    assert outcomes.count("ok") == 10
    assert outcomes.count(str(grpc.StatusCode.RESOURCE_EXHAUSTED)) == 40
