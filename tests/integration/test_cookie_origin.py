"""The login cookie on the routes that are not writes but still act for the user: a WebSocket
handshake (native and the older programs' protocols) and ChatAPI's ``GET /api?q=``.

A browser sends the cookie with a WebSocket handshake, or a ``GET``, that a page of any site
makes it send; the socket would then ask questions as the user. So the cookie serves only this
site's own pages, by the rule of the HTTP writes; a key (Bearer, ``?token=``, the first frame)
is never sent by a browser on its own and is not held to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from support import Gateway
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from chatgate.settings import Settings

PASSWORD = "alice-password"
FOREIGN = {
    "foreign-origin": {"Origin": "https://evil.example"},
    "null-origin": {"Origin": "null"},
    "cross-site-fetch": {"Sec-Fetch-Site": "cross-site"},
    "same-site-fetch": {"Sec-Fetch-Site": "same-site"},
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    settings = Settings.load(
        data_dir=tmp_path_factory.mktemp("origin"),
        port=0,
        grpc_port=0,
        demo_chunk_delay=0.0,
        usage_flush_seconds=0.05,
        default_daily_requests=None,
        conversation_titles=False,
        compat_model="demo",
    )
    server = Gateway(settings).start()
    server.user("alice", PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cookie(gateway: Gateway) -> str:
    """The ``Cookie`` header of alice's browser after she logged in on the web page."""
    response = httpx.post(
        gateway.url + "/api/v1/auth/login",
        json={"username": "alice", "password": PASSWORD, "cookie": True},
    )
    response.raise_for_status()
    return f"chatgate_session={response.cookies['chatgate_session']}"


def open_ws(
    gateway: Gateway, path: str, headers: dict[str, str], query: str = ""
) -> ClientConnection:
    url = gateway.url.replace("http", "ws", 1) + path + query
    return connect(url, additional_headers=headers, open_timeout=10)


def recv(sock: ClientConnection) -> str:
    frame = sock.recv(timeout=15)
    assert isinstance(frame, str)
    return frame


# ---- each WebSocket route: how it answers one question, and how it refuses ------------------


def native_question(sock: ClientConnection) -> str:
    """The user who answered, as the native socket tells it (its ``auth`` is not sent)."""
    sock.send(json.dumps({"type": "chat", "id": "q", "model": "demo", "prompt": "hi"}))
    while (frame := json.loads(recv(sock)))["type"] == "delta":
        pass
    assert frame["type"] == "done", frame
    return "answered"


def seq_question(sock: ClientConnection) -> str:
    sock.send(json.dumps({"seq": "q", "data": {"query": "hi", "model": "demo"}}))
    while (frame := json.loads(recv(sock)))["data"]["finish_reason"] is None:
        pass
    assert frame["code"] == 0, frame
    return "answered"


def ask_question(sock: ClientConnection) -> str:
    sock.send("<|ask|>$new$new$hi")
    while not (line := recv(sock)).startswith(("<|end|>$", "<|err|>$")):
        pass
    assert line.startswith("<|end|>$"), line
    return "answered"


def native_refusal(frame: str) -> str:
    error = json.loads(frame)
    assert error["type"] == "error" and error["code"] == "permission_denied", error
    return str(error["message"])


def seq_refusal(frame: str) -> str:
    error = json.loads(frame)
    assert error["code"] == 403 and error["data"]["finish_reason"] == "stop", error
    return str(error["msg"])


def ask_refusal(frame: str) -> str:
    assert frame.startswith("<|err|>$"), frame
    return frame.removeprefix("<|err|>$")


ROUTES: dict[str, tuple[Callable[[ClientConnection], str], Callable[[str], str]]] = {
    "/api/v1/ws": (native_question, native_refusal),
    "/compat/ws/seq": (seq_question, seq_refusal),
    "/compat/ws/ask": (ask_question, ask_refusal),
}


def refused(gateway: Gateway, path: str, headers: dict[str, str]) -> str:
    """The refusal's message, after checking the socket is then closed as a policy violation."""
    _, refusal = ROUTES[path]
    with open_ws(gateway, path, headers) as sock:
        message = refusal(recv(sock))
        with pytest.raises(ConnectionClosed) as closed:
            sock.recv(timeout=15)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    return message


def answered(gateway: Gateway, path: str, headers: dict[str, str], query: str = "") -> str:
    question, _ = ROUTES[path]
    with open_ws(gateway, path, headers, query) as sock:
        return question(sock)


@pytest.mark.parametrize("forgery", list(FOREIGN))
@pytest.mark.parametrize("path", list(ROUTES))
def test_a_websocket_another_site_opens_with_the_login_cookie_is_refused(
    gateway: Gateway, cookie: str, path: str, forgery: str
) -> None:
    message = refused(gateway, path, {"Cookie": cookie, **FOREIGN[forgery]})
    assert "another site cannot use the login cookie" in message


@pytest.mark.parametrize("same", ["origin", "sec-fetch-site", "neither"])
@pytest.mark.parametrize("path", list(ROUTES))
def test_the_sites_own_page_opens_a_websocket_with_the_login_cookie(
    gateway: Gateway, cookie: str, path: str, same: str
) -> None:
    headers = {"Cookie": cookie}
    if same == "origin":
        headers["Origin"] = gateway.url
    elif same == "sec-fetch-site":
        headers["Sec-Fetch-Site"] = "same-origin"
    assert answered(gateway, path, headers) == "answered"


@pytest.mark.parametrize("path", list(ROUTES))
def test_without_the_cookie_or_a_key_a_websocket_has_no_user(gateway: Gateway, path: str) -> None:
    """The server has no anonymous user: what the same-origin case answered was the cookie's."""
    if path == "/api/v1/ws":
        with open_ws(gateway, path, {"Origin": gateway.url}) as sock:
            sock.send(json.dumps({"type": "chat", "id": "q", "model": "demo", "prompt": "hi"}))
            assert json.loads(recv(sock))["code"] == "invalid_api_key"
        return
    with open_ws(gateway, path, {"Origin": gateway.url}) as sock:
        assert "API key" in recv(sock)


@pytest.mark.parametrize("path", list(ROUTES))
def test_keys_on_a_websocket_are_not_held_to_the_cookies_rule(
    gateway: Gateway, cookie: str, path: str
) -> None:
    """A script or a page that holds a key may connect from anywhere, cookie or not."""
    key = gateway.key("alice")
    foreign = {"Origin": "https://elsewhere.example", "Sec-Fetch-Site": "cross-site"}
    bearer = {"Authorization": f"Bearer {key}", "Cookie": cookie, **foreign}
    assert answered(gateway, path, bearer) == "answered"
    assert answered(gateway, path, {"Cookie": cookie, **foreign}, f"?token={key}") == "answered"


def test_the_native_websockets_first_frame_key_works_from_any_site(gateway: Gateway) -> None:
    key = gateway.key("alice")
    with open_ws(gateway, "/api/v1/ws", {"Origin": "https://elsewhere.example"}) as sock:
        sock.send(json.dumps({"type": "auth", "id": "a", "token": key}))
        assert json.loads(recv(sock))["ok"] is True
        assert native_question(sock) == "answered"


# ---- ChatAPI's GET /api?q= ------------------------------------------------------------------


def chatapi(gateway: Gateway, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(gateway.url + "/api", params={"q": "hi"}, headers=headers, timeout=15)


@pytest.mark.parametrize("forgery", list(FOREIGN))
def test_a_chatapi_question_another_site_asks_with_the_login_cookie_is_refused(
    gateway: Gateway, cookie: str, forgery: str
) -> None:
    before = len(gateway.request_log())
    response = chatapi(gateway, {"Cookie": cookie, **FOREIGN[forgery]})
    assert response.status_code == 403, response.text
    body: dict[str, Any] = response.json()
    assert body["statu"] is False and "another site" in body["message"]
    assert len(gateway.request_log()) == before, "the forged question was asked"


@pytest.mark.parametrize("same", [{"Origin": "{url}"}, {"Sec-Fetch-Site": "same-origin"}, {}])
def test_the_sites_own_page_asks_chatapi_with_the_login_cookie(
    gateway: Gateway, cookie: str, same: dict[str, str]
) -> None:
    headers = {k: v.format(url=gateway.url) for k, v in same.items()}
    response = chatapi(gateway, {"Cookie": cookie, **headers})
    assert response.status_code == 200 and response.json()["statu"] is True, response.text


def test_a_chatapi_key_is_not_held_to_the_cookies_rule(gateway: Gateway, cookie: str) -> None:
    headers = {"Authorization": f"Bearer {gateway.key('alice')}", "Cookie": cookie}
    response = chatapi(gateway, {**headers, "Origin": "https://elsewhere.example"})
    assert response.status_code == 200, response.text
