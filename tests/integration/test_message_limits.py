"""A message longer than ``max_message_chars``, or a system prompt longer than
``max_system_chars``, is refused on every transport: a clear error in that transport's own
shape, before the quota is taken, with nothing stored and nothing sent upstream, and the same
connection goes on answering the next question."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from support import Gateway, free_port
from websockets.sync.client import ClientConnection, connect

from chatgate.settings import Settings
from chatgate.transports.protos import (
    chat_pb2,
    chat_pb2_grpc,
    chatgate_v1_pb2,
    chatgate_v1_pb2_grpc,
)

MESSAGE_LIMIT = 100
SYSTEM_LIMIT = 50
TOO_LONG = "q" * (MESSAGE_LIMIT + 1)
SYSTEM_TOO_LONG = "s" * (SYSTEM_LIMIT + 1)


@dataclass(frozen=True)
class Answer:
    """What a transport said: an answer, or an error's message (and ``param`` where the
    transport's shape has one)."""

    ok: bool
    message: str = ""
    param: str | None = None


# How to ask one question (and perhaps a system prompt) on an open connection.
Ask = Callable[[str, str | None], Answer]
Transport = Callable[[Gateway, str], Any]  # a context manager that yields an ``Ask``


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    settings = Settings.load(
        data_dir=tmp_path_factory.mktemp("limits"),
        port=0,
        grpc_port=free_port(),
        demo_chunk_delay=0.0,
        usage_flush_seconds=0.05,
        default_daily_requests=None,
        conversation_titles=False,
        compat_model="demo",
        max_message_chars=MESSAGE_LIMIT,
        max_system_chars=SYSTEM_LIMIT,
    )
    server = Gateway(settings).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def key(gateway: Gateway) -> str:
    return gateway.key("alice")


def messages(question: str, system: str | None) -> list[dict[str, str]]:
    head = [{"role": "system", "content": system}] if system is not None else []
    return [*head, {"role": "user", "content": question}]


# ---- the transports -------------------------------------------------------------------------


def openai_error(response: httpx.Response) -> Answer:
    if response.status_code == 200:
        return Answer(True)
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "request_too_large" and error["type"] == "invalid_request_error"
    return Answer(False, error["message"], error["param"])


def openai_chat(**more: Any) -> Transport:
    @contextmanager
    def transport(gateway: Gateway, key: str) -> Iterator[Ask]:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=gateway.url, headers=headers, timeout=15) as client:

            def ask(question: str, system: str | None) -> Answer:
                body = {"model": "demo", "messages": messages(question, system), **more}
                return openai_error(client.post("/v1/chat/completions", json=body))

            yield ask

    return transport


@contextmanager
def openai_completions(gateway: Gateway, key: str) -> Iterator[Ask]:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=15) as client:

        def ask(question: str, system: str | None) -> Answer:
            body = {"model": "demo", "prompt": question}
            return openai_error(client.post("/v1/completions", json=body))

        yield ask


@contextmanager
def native_http(gateway: Gateway, key: str) -> Iterator[Ask]:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=15) as client:

        def ask(question: str, system: str | None) -> Answer:
            body = {"content": question, "system": system, "stream": False}
            return openai_error(client.post("/api/v1/conversations/new/messages", json=body))

        yield ask


@contextmanager
def easybackend_http(gateway: Gateway, key: str) -> Iterator[Ask]:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=15) as client:

        def ask(question: str, system: str | None) -> Answer:
            response = client.post("/ask/new", json={"prompt": question})
            if response.status_code == 200:
                return Answer(True)
            assert response.status_code == 413, response.text
            return Answer(False, response.json()["detail"])

        yield ask


def ws(gateway: Gateway, path: str, key: str) -> ClientConnection:
    url = gateway.url.replace("http", "ws", 1) + path
    headers = {"Authorization": f"Bearer {key}"}
    return connect(url, additional_headers=headers, open_timeout=10)


def recv_json(sock: ClientConnection) -> dict[str, Any]:
    frame = sock.recv(timeout=15)
    assert isinstance(frame, str)
    data: dict[str, Any] = json.loads(frame)
    return data


@contextmanager
def native_ws(gateway: Gateway, key: str) -> Iterator[Ask]:
    with ws(gateway, "/api/v1/ws", key) as sock:
        count = iter(range(1_000_000))

        def ask(question: str, system: str | None) -> Answer:
            rid = f"r{next(count)}"
            frame = {"type": "chat", "id": rid, "model": "demo", "conversation_id": "new"}
            sock.send(json.dumps({**frame, "messages": messages(question, system)}))
            while (reply := recv_json(sock))["type"] == "delta":
                pass
            assert reply["id"] == rid, reply
            if reply["type"] == "done":
                return Answer(True)
            assert reply["type"] == "error" and reply["code"] == "request_too_large", reply
            return Answer(False, reply["message"], reply["param"])

        yield ask


def seq_ws(conversation: bool) -> Transport:
    @contextmanager
    def transport(gateway: Gateway, key: str) -> Iterator[Ask]:
        with ws(gateway, "/compat/ws/seq", key) as sock:

            def ask(question: str, system: str | None) -> Answer:
                data: dict[str, Any] = {"model": "demo"}
                if conversation:
                    data |= {"messages": messages(question, system), "conversation_id": "new"}
                else:
                    data["query"] = question
                sock.send(json.dumps({"seq": "s", "data": data}))
                while (reply := recv_json(sock))["data"]["finish_reason"] is None:
                    pass
                if reply["code"] == 0:
                    return Answer(True)
                assert reply["code"] == 413 and reply["data"]["contents"] == "", reply
                return Answer(False, reply["msg"])

            yield ask

    return transport


def ask_line(lines: list[str]) -> Answer:
    last = lines[-1]
    if last.startswith("<|end|>$"):
        return Answer(True)
    assert last.startswith("<|err|>$") and len(lines) == 1, lines
    return Answer(False, last.removeprefix("<|err|>$"))


@contextmanager
def ask_ws(gateway: Gateway, key: str) -> Iterator[Ask]:
    with ws(gateway, "/compat/ws/ask", key) as sock:

        def ask(question: str, system: str | None) -> Answer:
            sock.send(f"<|ask|>$new$new${question}")
            lines: list[str] = []
            while not lines or not lines[-1].startswith(("<|end|>$", "<|err|>$")):
                frame = sock.recv(timeout=15)
                assert isinstance(frame, str)
                lines.append(frame)
            return ask_line(lines)

        yield ask


@contextmanager
def grpc_native(gateway: Gateway, key: str) -> Iterator[Ask]:
    metadata = (("authorization", f"Bearer {key}"),)
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = chatgate_v1_pb2_grpc.ChatgateStub(channel)

        def ask(question: str, system: str | None) -> Answer:
            sent = [chatgate_v1_pb2.Message(**m) for m in messages(question, system)]
            request = chatgate_v1_pb2.ChatRequest(
                model="demo", messages=sent, conversation_id="new"
            )
            try:
                events = list(stub.Chat(request, metadata=metadata))
            except grpc.RpcError as refused:
                assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
                return Answer(False, refused.details())  # type: ignore[attr-defined]
            assert events[-1].WhichOneof("event") == "done"
            return Answer(True)

        yield ask


@contextmanager
def grpc_ask(gateway: Gateway, key: str) -> Iterator[Ask]:
    metadata = (("authorization", f"Bearer {key}"),)
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = chat_pb2_grpc.ChatStub(channel)

        def ask(question: str, system: str | None) -> Answer:
            request = chat_pb2.askrequest(prompt=question, conversation_id="new")
            return ask_line([r.response for r in stub.Ask(request, metadata=metadata)])

        yield ask


QUESTION_TRANSPORTS: dict[str, Transport] = {
    "openai": openai_chat(),
    "openai-streamed": openai_chat(stream=True),
    "openai-conversation": openai_chat(conversation_id="new"),
    "openai-completions": openai_completions,
    "native-http": native_http,
    "native-ws": native_ws,
    "seq-ws-messages": seq_ws(conversation=True),
    "seq-ws-query": seq_ws(conversation=False),
    "ask-ws": ask_ws,
    "grpc-native": grpc_native,
    "grpc-ask": grpc_ask,
    "easybackend-ask": easybackend_http,
}
# The transports that carry a system prompt.
SYSTEM_TRANSPORTS = ["openai", "openai-conversation", "native-http", "native-ws"]
SYSTEM_TRANSPORTS += ["seq-ws-messages", "grpc-native"]


def stored_and_logged(gateway: Gateway) -> tuple[int, int]:
    return len(gateway.stored_messages()), len(gateway.request_log())


@pytest.mark.parametrize("name", list(QUESTION_TRANSPORTS))
def test_a_question_over_its_limit_is_refused_on_every_transport_and_nothing_is_kept(
    gateway: Gateway, key: str, name: str
) -> None:
    with QUESTION_TRANSPORTS[name](gateway, key) as ask:
        before = stored_and_logged(gateway)
        refused = ask(TOO_LONG, None)
        assert not refused.ok
        assert f"at most {MESSAGE_LIMIT} characters" in refused.message
        assert refused.param in (None, "content", "prompt")
        assert stored_and_logged(gateway) == before, "an oversize question was kept or counted"
        assert ask("q" * MESSAGE_LIMIT, None).ok, "the connection stopped serving"
    assert stored_and_logged(gateway)[1] == before[1] + 1


@pytest.mark.parametrize("name", SYSTEM_TRANSPORTS)
def test_a_system_prompt_over_its_limit_is_refused_on_every_transport_and_nothing_is_kept(
    gateway: Gateway, key: str, name: str
) -> None:
    with QUESTION_TRANSPORTS[name](gateway, key) as ask:
        before = stored_and_logged(gateway)
        refused = ask("hi", SYSTEM_TOO_LONG)
        assert not refused.ok
        assert f"at most {SYSTEM_LIMIT} characters" in refused.message
        assert refused.param in (None, "system")
        assert stored_and_logged(gateway) == before, "an oversize system prompt was kept"
        assert ask("hi", "s" * SYSTEM_LIMIT).ok, "the connection stopped serving"


def test_system_messages_are_held_together_to_the_system_prompts_limit(
    gateway: Gateway, key: str
) -> None:
    """A conversation keeps its system messages joined as one prompt, so their sum counts."""
    half = {"role": "system", "content": "s" * (SYSTEM_LIMIT // 2)}
    body: dict[str, Any] = {
        "model": "demo",
        "messages": [half, half, {"role": "user", "content": "hi"}],
    }
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 413 and response.json()["error"]["param"] == "system"
    del body["messages"][0]
    assert httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=headers).is_success


def test_content_parts_count_the_characters_of_their_texts(gateway: Gateway, key: str) -> None:
    half = {"type": "text", "text": "q" * (MESSAGE_LIMIT // 2 + 1)}
    body = {"model": "demo", "messages": [{"role": "user", "content": [half, half]}]}
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 413 and response.json()["error"]["param"] == "content"
