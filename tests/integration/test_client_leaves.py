"""A client that leaves is noticed on every HTTP route that calls the model, from the moment its
request is read: before the first upstream event, while the upstream is silent, with or without
response headers sent. The upstream call is dropped at once and no retry follows.

The client is a plain socket that sends its request and closes, as ``curl -m 2`` does when its
time runs out; the upstream is ``FaultyUpstream``, which says nothing until the gateway hangs up.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from faulty_upstream import Act, FaultyUpstream, ok, stall, stall_after
from support import Gateway
from upstream_rig import eventually, request_log

from chatgate.settings import Settings

FIRST_TOKEN = 3.0  # long: an upstream call still open after a second was not cancelled
NO_RETRY_WINDOW = 0.4  # backoff is 10 ms: a retry would have come by then


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultyUpstream]:
    server = FaultyUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: FaultyUpstream
) -> Iterator[Gateway]:
    timeouts = {"connect": 2.0, "first_token": FIRST_TOKEN, "idle": FIRST_TOKEN, "total": 30.0}
    settings = Settings.load(
        data_dir=tmp_path_factory.mktemp("leavers"),
        port=0,
        grpc_port=0,
        usage_flush_seconds=0.05,
        default_daily_requests=None,
        models_refresh_seconds=0,
        compat_model="solo",
        conversation_titles=False,
        providers=[
            {
                "name": "primary",
                "base_url": upstream.base_url,
                "api_keys": ["k"],
                "timeouts": timeouts,
                "discover_models": False,
            }
        ],
        models=[{"name": "solo", "deployments": ["primary"], "upstream_name": "demo"}],
        routing={"retries": 2, "backoff_base": 0.01, "backoff_max": 0.01, "breaker_failures": 100},
    )
    server = Gateway(settings).start()
    yield server
    server.stop()


@dataclass(frozen=True)
class Leaver:
    """A request on one route, the upstream's silence, and where the client gives up."""

    name: str
    method: str
    path: str
    body: dict[str, Any] | None
    act: Act


def _chat(stream: bool) -> dict[str, Any]:
    return {"model": "solo", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


def _prompt(stream: bool) -> dict[str, Any]:
    return {"model": "solo", "stream": stream, "prompt": "hi"}


LEAVERS = [
    Leaver("chat-streamed-before-any-event", "POST", "/v1/chat/completions", _chat(True), stall()),
    Leaver("chat-streamed-upstream-headers-only", "POST", "/v1/chat/completions", _chat(True),
           stall_after(0)),
    Leaver("chat-streamed-after-first-chunk", "POST", "/v1/chat/completions", _chat(True),
           stall_after(1)),
    Leaver("chat-whole", "POST", "/v1/chat/completions", _chat(False), stall()),
    Leaver("completion-streamed", "POST", "/v1/completions", _prompt(True), stall()),
    Leaver("completion-whole", "POST", "/v1/completions", _prompt(False), stall()),
    Leaver("native-message-streamed", "POST", "/api/v1/conversations/new/messages",
           {"content": "hi"}, stall()),
    Leaver("native-message-streamed-after-first-chunk", "POST",
           "/api/v1/conversations/new/messages", {"content": "hi"}, stall_after(2)),
    Leaver("native-message-whole", "POST", "/api/v1/conversations/new/messages",
           {"content": "hi", "stream": False}, stall()),
    Leaver("native-regenerate", "POST", "/api/v1/conversations/{conv}/messages/{reply}/regenerate",
           {"stream": False}, stall()),
    Leaver("native-edit", "POST", "/api/v1/conversations/{conv}/messages/{question}/edit",
           {"content": "again"}, stall()),
]  # fmt: skip


def _conversation(gateway: Gateway, key: str) -> dict[str, str]:
    """A conversation with one answered question, for the routes that need one."""
    reply = httpx.post(
        gateway.url + "/api/v1/conversations/new/messages",
        headers={"Authorization": f"Bearer {key}"},
        json={"content": "first", "stream": False},
        timeout=10,
    ).json()
    return {
        "conv": reply["conversation_id"],
        "reply": reply["message_id"],
        "question": reply["parent_id"],
    }


def _send_and_leave(gateway: Gateway, upstream: FaultyUpstream, leaver: Leaver, key: str) -> None:
    """Send the request, wait until the upstream has it, then hang up."""
    body = orjson.dumps(leaver.body) if leaver.body is not None else b""
    head = (
        f"{leaver.method} {leaver.path} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"authorization: Bearer {key}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(head.encode() + body)
        eventually(lambda: upstream.busy == 1, "the upstream got the call")


@pytest.mark.parametrize("leaver", LEAVERS, ids=[leaver.name for leaver in LEAVERS])
def test_client_that_leaves_before_the_reply_cancels_the_upstream_call_and_its_retries(
    gateway: Gateway, upstream: FaultyUpstream, leaver: Leaver
) -> None:
    user = f"leaver-{leaver.name}"
    key = gateway.key(user)
    upstream.script.clear()
    upstream.default = ok()
    ids = _conversation(gateway, key) if "{" in leaver.path else {}
    leaver = Leaver(leaver.name, leaver.method, leaver.path.format(**ids), leaver.body, leaver.act)
    calls = len(upstream.chat_requests())
    upstream.enqueue(leaver.act)

    _send_and_leave(gateway, upstream, leaver, key)
    left = time.monotonic()
    eventually(lambda: upstream.busy == 0, "the upstream saw the hang-up", timeout=1.0)
    noticed = time.monotonic() - left

    time.sleep(NO_RETRY_WINDOW)
    assert len(upstream.chat_requests()) == calls + 1, "the call was tried again"
    assert upstream.busy == 0
    assert noticed < 1.0
    statuses = [row.status for row in request_log(gateway, user)]
    assert statuses[-1] == "cancelled"


def test_a_reply_that_finishes_is_not_mistaken_for_a_client_leaving(
    gateway: Gateway, upstream: FaultyUpstream
) -> None:
    """The server reports ``http.disconnect`` once a reply is complete; nothing is cancelled."""
    upstream.script.clear()
    upstream.default = ok()
    key = gateway.key("stayer")
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}) as client:
        for _ in range(3):  # keep-alive: the next request on the same connection still works
            whole = client.post("/v1/chat/completions", json=_chat(False))
            assert whole.status_code == 200 and whole.json()["choices"][0]["message"]["content"]
            streamed = client.post("/v1/chat/completions", json=_chat(True))
            assert streamed.text.endswith("data: [DONE]\n\n")
    assert {row.status for row in request_log(gateway, "stayer")} == {"ok"}
