"""The older programs' HTTP routes (EasyBackend's ``/ask``, ChatAPI's ``/api?q=``) notice a
client that leaves before its answer is ready, and drop the upstream call (no retry follows).

The client is a plain socket that sends its request and closes, as ``curl -m 2`` does; the
upstream is ``FaultyUpstream``, which says nothing until the gateway hangs up.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from faulty_upstream import FaultyUpstream, ok, stall
from support import Gateway
from upstream_rig import eventually, request_log

from chatgate.settings import Settings

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
    timeouts = {"connect": 2.0, "first_token": 3.0, "idle": 3.0, "total": 30.0}
    settings = Settings.load(
        data_dir=tmp_path_factory.mktemp("compat-leavers"),
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


def chatapi_token(gateway: Gateway, name: str) -> str:
    gateway.user(name, "a long enough password")
    reply = httpx.post(gateway.url + "/token", json={"u": name, "p": "a long enough password"})
    token: str = reply.json()["message"]["token"]
    return token


def send_and_leave(gateway: Gateway, upstream: FaultyUpstream, head: str, body: bytes) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(head.encode() + body)
        eventually(lambda: upstream.busy == 1, "the upstream got the call")


@pytest.mark.parametrize("route", ["easybackend /ask", "chatapi /api"])
def test_client_that_leaves_an_old_programs_route_cancels_the_upstream_call(
    gateway: Gateway, upstream: FaultyUpstream, route: str
) -> None:
    user = "leaver-" + route.split()[0]
    if route == "chatapi /api":
        token = chatapi_token(gateway, user)
        body = b""
        head = f"GET /api?q=hi HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n\r\n"
    else:
        key = gateway.key(user)
        body = orjson.dumps({"prompt": "hi"})
        head = (
            f"POST /ask/new HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {key}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
    upstream.script.clear()
    upstream.default = ok()
    calls = len(upstream.chat_requests())
    upstream.enqueue(stall())

    send_and_leave(gateway, upstream, head, body)
    eventually(lambda: upstream.busy == 0, "the upstream saw the hang-up", timeout=1.0)

    time.sleep(NO_RETRY_WINDOW)
    assert len(upstream.chat_requests()) == calls + 1, "the call was tried again"
    assert [row.status for row in request_log(gateway, user)][-1] == "cancelled"


def test_old_programs_routes_still_answer_a_client_that_stays(
    gateway: Gateway, upstream: FaultyUpstream
) -> None:
    upstream.script.clear()
    upstream.default = ok()
    key = gateway.key("stayer")
    with httpx.Client(base_url=gateway.url, timeout=15) as client:
        for _ in range(2):  # keep-alive: the next request on the same connection still works
            asked = client.post(
                "/ask/new", json={"prompt": "hi"}, headers={"Authorization": f"Bearer {key}"}
            )
            assert asked.status_code == 200 and asked.json()["message"]
        token = chatapi_token(gateway, "stayer-chatapi")
        api = client.get("/api", params={"q": "hi"}, headers={"Authorization": f"Bearer {token}"})
        assert api.status_code == 200 and api.json()["statu"] is True
