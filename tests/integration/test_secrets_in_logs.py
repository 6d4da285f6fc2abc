"""No password, key or login token ever reaches a log line, even at debug level, even when
things go wrong. (The whole test run is checked the same way when it ends: see conftest.)"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import grpc
import httpx
import pytest
from support import LOG_LINES, SECRET_PATTERN, Gateway, free_port, leaked_secrets, remember
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from chatgate import log_redaction
from chatgate.transports.protos import (
    chat_pb2,
    chat_pb2_grpc,
    chatgate_v1_pb2,
    chatgate_v1_pb2_grpc,
)

PASSWORD = remember("saffron-Glacier-6610")


def test_no_secret_reaches_the_log(gateway: Gateway) -> None:
    assert logging.getLogger("chatgate").isEnabledFor(logging.DEBUG)
    start = len(LOG_LINES)
    gateway.user("alice", PASSWORD, admin=True)
    key = gateway.key("alice")
    token = gateway.login("alice", PASSWORD)
    url = gateway.url
    with httpx.Client(base_url=url) as http:
        http.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD + "x"})
        http.post("/api/v1/auth/login", json={"username": PASSWORD, "password": PASSWORD})
        chatapi = remember(
            http.post("/token", json={"u": "alice", "p": PASSWORD}).json()["message"]["token"]
        )
        http.get("/api", params={"q": "hello"}, headers={"Authorization": f"Bearer {chatapi}"})
        for credential in (key, token, key[:-2] + "zz", token[:-2] + "zz", "Basic " + PASSWORD):
            http.get("/v1/models", headers={"Authorization": f"Bearer {credential}"})
        made = http.post("/api/v1/keys", json={}, headers={"Authorization": f"Bearer {token}"})
        remember(made.json()["key"])
        http.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]},
        )
        http.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
        http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    gateway.flush()
    lines = LOG_LINES[start:]
    assert lines, "the scenario logged nothing, so the check would prove nothing"
    assert leaked_secrets(lines) == []


def test_the_leak_check_would_catch_a_leak() -> None:
    """The check above is not vacuous: a logged key or JWT is found even if never remembered."""
    start = len(LOG_LINES)
    logging.getLogger("chatgate.test").debug("%s", "sk-cg-" + "A" * 30)
    assert SECRET_PATTERN.findall("\n".join(LOG_LINES[start:]))
    del LOG_LINES[start:]


# uvicorn and grpc on the server's side (uvicorn hands the websockets library its own logger).
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "grpc")


@contextmanager
def talkative_servers() -> Iterator[None]:
    """The servers' loggers at every level, down to uvicorn's trace. (Enter it once the gateway
    is made: uvicorn sets its loggers' levels when it is configured.)"""
    loggers = [logging.getLogger(name) for name in SERVER_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def credentials(gateway: Gateway) -> dict[str, str]:
    """Every credential form: a key, a login token (a JWT), and broken copies of both."""
    gateway.user("alice", PASSWORD, admin=True)
    key = gateway.key("alice")
    token = remember(gateway.login("alice", PASSWORD))
    return {
        "key": key,
        "jwt": token,
        "bad key": remember(key[:-2] + "zz"),
        "bad jwt": remember(token[:-2] + "zz"),
    }


def websocket_conversations(gateway: Gateway, credential: str) -> None:
    """Open every WebSocket route with the credential in the query string, in the header and
    in an auth frame, and ask one question on each."""
    chat = {"type": "chat", "id": "q", "model": "demo", "prompt": "hi"}
    seq = {"seq": "s", "messages": [{"role": "user", "content": "hi"}], "model": "demo"}
    ws_url = gateway.url.replace("http://", "ws://")
    attempts: list[tuple[str, dict[str, str], list[str]]] = [
        (f"/api/v1/ws?token={credential}", {}, [json.dumps(chat)]),
        ("/api/v1/ws", {"Authorization": f"Bearer {credential}"}, [json.dumps(chat)]),
        ("/api/v1/ws", {}, [json.dumps({"type": "auth", "token": credential}), json.dumps(chat)]),
        (f"/compat/ws/seq?token={credential}", {}, [json.dumps(seq)]),
        (f"/compat/ws/ask?token={credential}", {}, ["<|ask|>$new$$hi"]),
        ("/compat/ws/ask", {"Authorization": f"Bearer {credential}"}, ["<|ask|>$new$$hi"]),
    ]
    for path, headers, frames in attempts:
        with (
            suppress(WebSocketException, OSError, TimeoutError),
            connect(ws_url + path, additional_headers=headers, open_timeout=10) as ws,
        ):
            for frame in frames:
                ws.send(frame)
            with suppress(TimeoutError):
                while True:
                    ws.recv(timeout=0.5)


def grpc_calls(gateway: Gateway, credential: str) -> None:
    metadata = (("authorization", f"Bearer {credential}"),)
    question = chatgate_v1_pb2.ChatRequest(
        model="demo", messages=[chatgate_v1_pb2.Message(role="user", content="hi")]
    )
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        native = chatgate_v1_pb2_grpc.ChatgateStub(channel)
        ask = chat_pb2_grpc.ChatStub(channel)
        calls: list[Callable[[], object]] = [
            lambda: list(native.Chat(question, metadata=metadata, timeout=10)),
            lambda: native.ListModels(chatgate_v1_pb2.ListModelsRequest(), metadata=metadata),
            lambda: list(ask.Ask(chat_pb2.askrequest(prompt="hi"), metadata=metadata, timeout=10)),
        ]
        for call in calls:
            with suppress(grpc.RpcError):
                call()


def test_no_credential_reaches_the_log_over_websocket_or_grpc(
    make_gateway: Callable[..., Gateway],
) -> None:
    """The gateway is made by ``create_app`` as ``chatgate serve`` makes it, with its log
    set-up; uvicorn and grpc then log all they can."""
    gateway = make_gateway(grpc_port=free_port())
    start = len(LOG_LINES)
    with talkative_servers():
        for credential in credentials(gateway).values():
            websocket_conversations(gateway, credential)
            grpc_calls(gateway, credential)
        gateway.flush()
    lines = LOG_LINES[start:]
    said = "\n".join(lines)
    assert '"WebSocket /api/v1/ws?token=***"' in said, "the connection lines were not logged"
    assert "/compat/ws/seq?token=***" in said and "/compat/ws/ask?token=***" in said
    assert leaked_secrets(lines) == []


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ('"WebSocket /api/v1/ws?token=%s" [accepted]', '"WebSocket /api/v1/ws?token=***"'),
        ("GET /x?model=demo&api_key=%s&stream=1", "GET /x?model=demo&api_key=***&stream=1"),
        ("GET /x?access_token=%s#top", "GET /x?access_token=***#top"),
        ("< Authorization: Bearer %s", "< Authorization: ***"),
        ("('authorization', 'Bearer %s')", "('authorization', '***')"),
        ("< Cookie: chatgate_session=%s", "< Cookie: ***"),
        ("""< TEXT '{"type": "auth", "token": "%s"}'""", """{"type": "auth", "token": "***"}"""),
    ],
)
def test_the_servers_lines_show_no_credential_in_any_place(line: str, shown: str) -> None:
    """The cleaning the servers' records get, wherever the credential is in the line, whether
    it comes as an argument or already in the message."""
    log_redaction.install()
    key = "sk-cg-" + "Q" * 43
    start = len(LOG_LINES)
    logging.getLogger("uvicorn.error").warning(line, key)
    logging.getLogger("websockets.server").warning(line % key)
    lines = LOG_LINES[start:]
    assert len(lines) == 2 and all(shown in ln for ln in lines), lines
    assert leaked_secrets(lines) == []
