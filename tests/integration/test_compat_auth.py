"""Every compatibility transport identifies its caller the same way: the caller's own credential
when one is sent, else the operator's anonymous user (``CHATGATE_ANONYMOUS_USER``), else a
refusal in that protocol's own shape. ChatAPI is the exception by design: its clients always
sent their JWT."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

import grpc
import httpx
import pytest
from support import Gateway, free_port
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from chatgate.transports.protos import chat_pb2, chat_pb2_grpc

# What one question gives over a transport: (answered?, the reply or refusal as text).
Ask = Callable[[Gateway, str | None], tuple[bool, str]]


def headers(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def over_ask_websocket(gateway: Gateway, key: str | None) -> tuple[bool, str]:
    url = gateway.url.replace("http", "ws", 1) + "/compat/ws/ask"
    with connect(url, additional_headers=headers(key), open_timeout=10) as ws:
        with contextlib.suppress(ConnectionClosed):  # a refusal may have closed it already
            ws.send("<|ask|>$new$new$hi")
        frames = [str(ws.recv(timeout=15))]
        while not frames[-1].startswith(("<|end|>$", "<|err|>$")):
            frames.append(str(ws.recv(timeout=15)))
    return frames[-1].startswith("<|end|>$"), "".join(frames)


def over_seq_websocket(gateway: Gateway, key: str | None) -> tuple[bool, str]:
    url = gateway.url.replace("http", "ws", 1) + "/compat/ws/seq"
    with connect(url, additional_headers=headers(key), open_timeout=10) as ws:
        with contextlib.suppress(ConnectionClosed):  # a refusal may have closed it already
            ws.send(json.dumps({"seq": "1", "data": {"query": "hi", "model": "demo"}}))
        text = ""
        while True:
            message = json.loads(ws.recv(timeout=15))
            text += message["data"]["contents"] or message["msg"]
            if message["data"]["finish_reason"] is not None:
                return message["code"] == 0, text


def over_easybackend_http(gateway: Gateway, key: str | None) -> tuple[bool, str]:
    reply = httpx.post(
        f"{gateway.url}/ask/new", json={"prompt": "hi"}, headers=headers(key), timeout=30
    )
    body = reply.json()
    if reply.status_code == 200:
        return True, body["message"]
    assert reply.status_code == 401
    return False, body["detail"]


def over_grpc_ask(gateway: Gateway, key: str | None) -> tuple[bool, str]:
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = chat_pb2_grpc.ChatStub(channel)
        request = chat_pb2.askrequest(prompt="hi", conversation_id="new")
        metadata = (("authorization", f"Bearer {key}"),) if key else None
        lines = [r.response for r in stub.Ask(request, metadata=metadata)]
    return lines[-1].startswith("<|end|>$"), "".join(lines)


TRANSPORTS = {
    "ask websocket": over_ask_websocket,
    "seq websocket": over_seq_websocket,
    "easybackend http": over_easybackend_http,
    "grpc ask": over_grpc_ask,
}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_without_a_credential_each_compat_transport_refuses_unless_an_anonymous_user_is_set(
    make_gateway: Callable[..., Gateway], transport: str
) -> None:
    ask: Ask = TRANSPORTS[transport]
    closed = make_gateway(grpc_port=free_port())
    answered, text = ask(closed, None)
    assert not answered and "API key" in text

    open_ = make_gateway(grpc_port=free_port(), anonymous_user="guest")
    answered, text = ask(open_, None)
    assert answered and 'You asked: "hi"' in text
    answered, _ = ask(open_, open_.key("alice"))
    assert answered
    answered, text = ask(open_, "sk-cg-not-a-real-key-at-all")
    assert not answered and text

    guest = open_.run(open_.services.accounts.get_user("guest"))
    alice = open_.run(open_.services.accounts.get_user("alice"))
    owners = [row.user_id for row in open_.request_log() if row.status == "ok"]
    assert owners == [guest.id, alice.id]


def test_chatapi_always_needs_its_token_even_with_an_anonymous_user(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(anonymous_user="guest")
    reply = httpx.get(f"{gateway.url}/api", params={"q": "hi"}, timeout=30)
    assert reply.status_code == 401
    assert reply.json() == {"statu": False, "message": "Missing Authorization Header"}
