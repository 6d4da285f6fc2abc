"""Malformed requests on every transport: each gets a clear error in that transport's own shape,
no traceback reaches the log, and the same connection (and the server) keeps serving.

One table of malformed chat requests goes through every transport that speaks the chat shape
(HTTP ``/v1/chat/completions``, the native WebSocket, the seq WebSocket, native gRPC, where it
can be expressed); the ask protocols get a table of malformed questions of their own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import pytest
from support import LOG_LINES, Gateway, free_port
from websockets.sync.client import ClientConnection, connect

from chatgate.transports.protos import (
    chat_pb2,
    chat_pb2_grpc,
    chatgate_v1_pb2,
    chatgate_v1_pb2_grpc,
)

pb = chatgate_v1_pb2
USER = {"role": "user", "content": "hi"}
LIMIT = 16_384


@dataclass(frozen=True)
class Bad:
    """A chat request with one thing wrong; ``seq`` says whether the seq protocol carries it
    (it takes messages and its own parameters only when ``openai_parameter`` is false)."""

    name: str
    body: dict[str, Any]
    seq: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def msgs(*items: Any) -> dict[str, Any]:
    return {"messages": list(items)}


def user(content: Any, **more: Any) -> dict[str, Any]:
    return msgs({"role": "user", "content": content, **more})


CHAT: list[Bad] = [
    Bad("role is a list", msgs({"role": ["user"], "content": "hi"})),
    Bad("role is an object", msgs({"role": {}, "content": "hi"})),
    Bad("role is a number", msgs({"role": 5, "content": "hi"})),
    Bad("role is unknown", msgs({"role": "wizard", "content": "hi"})),
    Bad("role is missing", msgs({"content": "hi"})),
    Bad("content is a number", user(5)),
    Bad("content is an object", user({"text": "hi"})),
    Bad("content is missing", msgs({"role": "user"})),
    Bad("part text is a number", user([{"type": "text", "text": 5}])),
    Bad("part text is null", user([{"type": "text", "text": None}])),
    Bad("part is a string", user(["hi"])),
    Bad("part type is unknown", user([{"type": "video", "video": "x"}])),
    Bad("part has no type", user([{"text": "hi"}])),
    Bad("image url is a number", user([{"type": "image_url", "image_url": {"url": 1}}])),
    Bad("image part without image", user([{"type": "image_url"}])),
    Bad("name is a number", user("hi", name=5)),
    Bad("tool message without its call id", msgs(USER, {"role": "tool", "content": "x"})),
    Bad("tool_calls is a number", msgs(USER, {"role": "assistant", "tool_calls": 1})),
    Bad("tool call is a number", msgs(USER, {"role": "assistant", "tool_calls": [1]})),
    Bad(
        "tool call function has no arguments",
        msgs(USER, {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]}),
    ),
    Bad("message is a string", msgs("hi")),
    Bad("message is null", msgs(None)),
    Bad("messages is a string", {"messages": "hi"}),
    Bad("messages is an object", {"messages": {"role": "user"}}),
    Bad("model is a number", {"model": 5}),
    Bad("model is a list", {"model": ["demo"]}),
    Bad("tools holds a number", {"tools": [1]}, seq=False),
    Bad("tools is an object", {"tools": {}}, seq=False),
    Bad(
        "tool name is a number",
        {"tools": [{"type": "function", "function": {"name": 5}}]},
        seq=False,
    ),
    Bad("tool has no function", {"tools": [{"type": "function"}]}, seq=False),
    Bad("tool_choice is unknown", {"tool_choice": "always"}, seq=False),
    Bad("tool_choice names nothing", {"tool_choice": {"type": "function"}}, seq=False),
    Bad("temperature is a string", {"temperature": "hot"}, extra={"openai_parameter": False}),
    Bad("temperature is too high", {"temperature": 5}, extra={"openai_parameter": False}),
    Bad("top_p is negative", {"top_p": -1}, extra={"openai_parameter": False}),
    Bad("max_tokens is zero", {"max_tokens": 0}, extra={"openai_parameter": False}),
    Bad("max_tokens is a string", {"max_tokens": "10"}, extra={"openai_parameter": False}),
    Bad("n is zero", {"n": 0}, seq=False),
    Bad("stop is a number", {"stop": 5}, extra={"openai_parameter": False}),
    Bad("stop holds a number", {"stop": [1]}, extra={"openai_parameter": False}),
    Bad("seed is beyond 64 bits", {"seed": 2**63}, seq=False),
    Bad("logit_bias is a list", {"logit_bias": [1]}, seq=False),
    Bad("response_format is a string", {"response_format": "json"}, seq=False),
]


def chat_body(bad: Bad) -> dict[str, Any]:
    return {"model": "demo", "messages": [USER], **bad.body}


@pytest.fixture
def served(make_gateway: Callable[..., Gateway]) -> Iterator[tuple[Gateway, str]]:
    """A gateway with gRPC, a key, and a check afterwards that nothing was logged as a crash."""
    start = len(LOG_LINES)
    gateway = make_gateway(grpc_port=free_port(), max_request_bytes=LIMIT, compat_model="demo")
    yield gateway, gateway.key("alice")
    crashes = [line for line in LOG_LINES[start:] if "Traceback" in line or " ERROR " in line]
    assert crashes == [], "a client's mistake was logged as a crash"


def ws(gateway: Gateway, path: str, key: str) -> ClientConnection:
    url = gateway.url.replace("http", "ws", 1) + path
    headers = {"Authorization": f"Bearer {key}"}
    return connect(url, additional_headers=headers, max_size=None, open_timeout=10)


def recv_json(sock: ClientConnection) -> dict[str, Any]:
    frame = sock.recv(timeout=15)
    assert isinstance(frame, str)
    data: dict[str, Any] = json.loads(frame)
    return data


# ---- the chat shape, transport by transport -------------------------------------------------


def test_http_chat_route_refuses_each_malformed_request_with_a_400(
    served: tuple[Gateway, str],
) -> None:
    gateway, key = served
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=15) as client:
        for bad in CHAT:
            for stream in (False, True):
                reply = client.post(
                    "/v1/chat/completions", json=chat_body(bad) | {"stream": stream}
                )
                assert reply.status_code == 400, bad.name
                error = reply.json()["error"]
                assert error["type"] == "invalid_request_error" and error["param"], bad.name
            good = client.post("/v1/chat/completions", json={"model": "demo", "messages": [USER]})
            assert good.status_code == 200, bad.name


def native_end(sock: ClientConnection, rid: str) -> dict[str, Any]:
    while True:
        frame = recv_json(sock)
        if frame.get("id") == rid and frame["type"] != "delta":
            return frame


def test_native_websocket_answers_each_malformed_request_on_its_id_and_keeps_the_socket(
    served: tuple[Gateway, str],
) -> None:
    gateway, key = served
    with ws(gateway, "/api/v1/ws", key) as sock:
        # A long request runs all along: no malformed neighbour may take it down.
        sock.send(json.dumps({"type": "chat", "id": "long", "model": "demo", "prompt": "hi"}))
        for i, bad in enumerate(CHAT):
            sock.send(json.dumps({"type": "chat", "id": f"bad{i}", **chat_body(bad)}))
            error = native_end(sock, f"bad{i}")
            assert error["type"] == "error", bad.name
            assert error["code"] == "invalid_request_error" and error["param"], bad.name
            sock.send(json.dumps({"type": "chat", "id": f"ok{i}", "model": "demo", "prompt": "x"}))
            assert native_end(sock, f"ok{i}")["type"] == "done", bad.name
        frames = [
            json.dumps({"type": "chat", "id": {}, "model": "demo", "prompt": "x"}),
            json.dumps({"type": "chat", "id": "x" * 200, "model": "demo", "prompt": "x"}),
            json.dumps({"type": "chat", "id": "p", "model": "demo", "prompt": 5}),
            json.dumps({"type": ["chat"], "id": "t"}),
            json.dumps({"type": "auth", "id": "a", "token": 5}),
            json.dumps({"type": "cancel", "id": "nothing"}),
            "[1, 2]",
            "{not json",
        ]
        for frame in frames:
            sock.send(frame)
            error = recv_json(sock)
            while error["type"] == "delta" or error["id"] == "long":
                error = recv_json(sock)
            assert error["type"] == "error" and error["message"], frame
        sock.send(json.dumps({"type": "ping", "id": "still"}))
        while (frame := recv_json(sock))["type"] != "pong":
            pass
    assert frame["id"] == "still"


def seq_end(sock: ClientConnection, seq: str) -> dict[str, Any]:
    while True:
        frame = recv_json(sock)
        if frame["seq"] == seq and frame["data"] and frame["data"]["finish_reason"] is not None:
            return frame


def test_seq_websocket_answers_each_malformed_request_on_its_seq_and_keeps_the_socket(
    served: tuple[Gateway, str],
) -> None:
    gateway, key = served
    with ws(gateway, "/compat/ws/seq", key) as sock:
        for i, bad in enumerate(b for b in CHAT if b.seq):
            data = {**chat_body(bad), **bad.extra}
            sock.send(json.dumps({"seq": f"bad{i}", "data": data}))
            error = seq_end(sock, f"bad{i}")
            assert error["code"] == 400 and error["msg"], bad.name
            assert error["data"]["contents"] == "", bad.name
            sock.send(json.dumps({"seq": f"ok{i}", "data": {"query": "hi", "model": "demo"}}))
            assert seq_end(sock, f"ok{i}")["code"] == 0, bad.name


def test_native_grpc_refuses_each_malformed_request_with_invalid_argument(
    served: tuple[Gateway, str],
) -> None:
    gateway, key = served
    metadata = (("authorization", f"Bearer {key}"),)
    bad_requests = [
        pb.ChatRequest(model="demo", messages=[pb.Message(role="wizard", content="x")]),
        pb.ChatRequest(model="demo", messages=[pb.Message(role="", content="x")]),
        pb.ChatRequest(model="demo", messages=[pb.Message(role="tool", content="x")]),
        pb.ChatRequest(model="", prompt="hi"),
        pb.ChatRequest(model="demo"),
        pb.ChatRequest(model="demo", prompt="hi", temperature=math.nan),
        pb.ChatRequest(model="demo", prompt="hi", temperature=5),
        pb.ChatRequest(model="demo", prompt="hi", top_p=2),
        pb.ChatRequest(model="demo", prompt="hi", max_tokens=0),
        pb.ChatRequest(model="demo", prompt="hi", max_tokens=-5),
        pb.ChatRequest(model="demo", prompt="hi", presence_penalty=3),
        pb.ChatRequest(model="demo", prompt="hi", stop=["s"] * 17),
        pb.ChatRequest(model="demo", prompt="hi", conversation_id="x" * 100),
    ]
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = chatgate_v1_pb2_grpc.ChatgateStub(channel)
        raw = channel.unary_stream("/chatgate.v1.Chatgate/Chat")
        for request in bad_requests:
            with pytest.raises(grpc.RpcError) as refused:
                list(stub.Chat(request, metadata=metadata))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, str(request)
            good = pb.ChatRequest(model="demo", prompt="hi")
            assert list(stub.Chat(good, metadata=metadata))[-1].WhichOneof("event") == "done"
        for garbage in UNPARSEABLE:
            with pytest.raises(grpc.RpcError) as refused:
                list(raw(garbage, metadata=metadata))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, garbage
        assert len(list(stub.Chat(pb.ChatRequest(model="demo", prompt="hi"), metadata=metadata)))


# Bytes that are not a message of the call's type: a truncated field, a string that is not UTF-8.
UNPARSEABLE = [b"\x0a\xff", b"\x0a\x02\xff\xfe", b"\xff\xff\xff\xff"]


# ---- the ask protocols ----------------------------------------------------------------------

ASK_FRAMES: list[str | bytes] = [
    "hello",
    "",
    "<|ask|>",
    "<|ask|>$new",
    "<|ask|>$new$only-two-parts",
    "<|ask|>$new$new$",
    "<|ask|>$new$new$   ",
    "<|ASK|>$new$new$hi",
    "<|end|>$new$new$hi",
    "<|ask|>$no-such-conversation$new$hi",
    "<|ask|>$" + "c" * 300 + "$new$hi",
    b"<|ask|>$new$new$binary",
    b"\xff\xfe",
    "<|ask|>$new$new$" + "x" * (LIMIT + 10),
]


def ask_lines(sock: ClientConnection) -> list[str]:
    out = []
    while True:
        frame = sock.recv(timeout=15)
        assert isinstance(frame, str)
        out.append(frame)
        if frame.startswith(("<|end|>$", "<|err|>$")):
            return out


def test_ask_websocket_answers_each_malformed_frame_with_an_err_line(
    served: tuple[Gateway, str],
) -> None:
    gateway, key = served
    with ws(gateway, "/compat/ws/ask", key) as sock:
        for frame in ASK_FRAMES:
            sock.send(frame)
            [error] = ask_lines(sock)
            assert error.startswith("<|err|>$") and len(error) > len("<|err|>$"), frame
            sock.send("<|ask|>$new$new$still there?")
            assert ask_lines(sock)[-1].startswith("<|end|>$"), frame


ASK_REQUESTS = [
    chat_pb2.askrequest(prompt=""),
    chat_pb2.askrequest(prompt="   "),
    chat_pb2.askrequest(prompt="hi", conversation_id="no-such-conversation"),
    chat_pb2.askrequest(prompt="hi", conversation_id="c" * 300),
    chat_pb2.askrequest(prompt="hi", conversation_id="new", parent_id="p" * 300),
    chat_pb2.askrequest(prompt="hi", conversation_id="a$b"),
]


def test_grpc_ask_answers_each_malformed_question_with_an_err_line_and_status_ok(
    served: tuple[Gateway, str],
) -> None:
    gateway, key = served
    metadata = (("authorization", f"Bearer {key}"),)
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = chat_pb2_grpc.ChatStub(channel)
        raw = channel.unary_stream("/chat.Chat/Ask")
        good = chat_pb2.askrequest(prompt="still there?", conversation_id="new")
        for request in ASK_REQUESTS:
            lines = [r.response for r in stub.Ask(request, metadata=metadata)]
            assert lines[-1].startswith("<|err|>$"), str(request)[:80]
            assert list(stub.Ask(good, metadata=metadata))[-1].response.startswith("<|end|>$")
        for garbage in UNPARSEABLE:
            with pytest.raises(grpc.RpcError) as refused:
                list(raw(garbage, metadata=metadata))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, garbage
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.Ask(chat_pb2.askrequest(prompt="x" * LIMIT), metadata=metadata))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert list(stub.Ask(good, metadata=metadata))[-1].response.startswith("<|end|>$")
