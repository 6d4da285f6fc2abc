"""Hostile input over HTTP: bodies too large or sent without a credential, numbers out of every
bound, JSON that is not JSON (``NaN``, ``Infinity``), writes forged by another site with the
login cookie, and a bug in the server. Each gets a clear answer in the route's own shape, never a
5xx, and the server keeps serving."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from support import Gateway

from chatgate.settings import Settings

BODY_LIMIT = 64 * 1024
MESSAGE_LIMIT = 2000
SYSTEM_LIMIT = 1000


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    settings = Settings.load(
        data_dir=tmp_path_factory.mktemp("hostile"),
        port=0,
        grpc_port=0,
        demo_chunk_delay=0.0,
        usage_flush_seconds=0.05,
        default_daily_requests=None,
        conversation_titles=False,
        max_request_bytes=BODY_LIMIT,
        max_message_chars=MESSAGE_LIMIT,
        max_system_chars=SYSTEM_LIMIT,
    )
    server = Gateway(settings).start()
    server.user("root", "root-password", admin=True)
    server.user("mallory", "mallory-password")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    token = gateway.login("root", "root-password")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=gateway.url, headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
def user(gateway: Gateway) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {gateway.key('mallory')}"}
    with httpx.Client(base_url=gateway.url, headers=headers) as client:
        yield client


def _raw(gateway: Gateway, request: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes as they are; whatever the server answers before closing or going quiet."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # it answered and closed before taking everything
            sock.sendall(request)
        received = b""
        try:
            while b"\r\n\r\n" not in received or not _complete(received):
                part = sock.recv(65536)
                if not part:
                    break
                received += part
        except TimeoutError:
            pass
        return received


def _complete(raw: bytes) -> bool:
    head, _, body = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else 0


# ---- bodies: limited while read, and never read before the credential is checked ----------

WRITES = [
    ("POST", "/api/v1/conversations"),
    ("POST", "/api/v1/conversations/new/messages"),
    ("PATCH", "/api/v1/conversations/abc"),
    ("POST", "/api/v1/conversations/abc/messages/def/edit"),
    ("POST", "/api/v1/keys"),
    ("POST", "/api/v1/auth/password"),
    ("POST", "/api/v1/admin/users"),
    ("PUT", "/api/v1/admin/users/mallory/quota"),
    ("PUT", "/api/v1/admin/providers/p"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/conversations"),
    ("POST", "/v1/conversations/abc/items"),
    ("POST", "/v1/responses"),
]


@pytest.mark.parametrize(("method", "path"), WRITES, ids=[f"{m} {p}" for m, p in WRITES])
def test_a_body_without_a_credential_is_refused_before_it_is_read(
    gateway: Gateway, method: str, path: str
) -> None:
    """A 256 MiB body is announced, 1 KiB of it sent: the 401 comes without waiting for more."""
    head = (
        f"{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {256 * 1024 * 1024}\r\n\r\n"
    ).encode()
    answer = _raw(gateway, head + b"[" * 1024)
    assert _status(answer) == 401, answer[:200]
    assert b'"invalid_api_key"' in answer


@pytest.mark.parametrize(
    ("method", "path"),
    [*WRITES, ("POST", "/api/v1/auth/login"), ("POST", "/ask/new"), ("POST", "/token")],
    ids=[f"{m} {p}" for m, p in [*WRITES, ("POST", "login"), ("POST", "ask"), ("POST", "token")]],
)
def test_a_body_over_the_limit_is_refused_while_it_is_read(
    gateway: Gateway, admin: httpx.Client, method: str, path: str
) -> None:
    """Chunked, with no length announced: the limit counts the bytes as they come."""
    token = admin.headers["authorization"]
    chunk = b"x" * 16384
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(BODY_LIMIT // 16384 + 2))
    head = (
        f"{method} {path} HTTP/1.1\r\nhost: x\r\nauthorization: {token}\r\n"
        "content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    ).encode()
    answer = _raw(gateway, head + chunks + b"0\r\n\r\n")
    assert _status(answer) == 413, answer[:300]
    shape = {"/ask/new": b'"detail"', "/token": b'"statu":false'}.get(path, b'"request_too_large"')
    assert shape in answer, answer[:300]
    assert httpx.get(gateway.url + "/healthz").status_code == 200


class PassThrough:
    """A pure ASGI middleware that changes nothing: with it installed, the chat routes go
    through FastAPI's whole stack, its body limit included."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_a_chat_body_over_the_limit_is_a_413_with_middleware_installed_too(
    make_settings: Callable[..., Settings], path: str
) -> None:
    stacked = Gateway(make_settings(max_request_bytes=BODY_LIMIT))
    stacked.app.add_middleware(PassThrough)
    stacked.start()
    try:
        key = stacked.key("big")
        chunk = b"x" * 16384
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6))
        head = (
            f"POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n"
            "content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        ).encode()
        answer = _raw(stacked, head + chunks + b"0\r\n\r\n")
        assert _status(answer) == 413, answer[:300]
        assert b'"request_too_large"' in answer
    finally:
        stacked.stop()


def _sizes_cases() -> list[tuple[str, str, str, dict[str, Any]]]:
    long_message, long_system = "m" * (MESSAGE_LIMIT + 1), "s" * (SYSTEM_LIMIT + 1)
    chat = "/v1/chat/completions"
    return [
        ("message", "POST", "/api/v1/conversations/new/messages", {"content": long_message}),
        (
            "system-of-a-new-conversation",
            "POST",
            "/api/v1/conversations/new/messages",
            {"content": "hi", "system": long_system},
        ),
        ("conversation-system", "POST", "/api/v1/conversations", {"system": long_system}),
        (
            "openai-message-stored",
            "POST",
            chat,
            {
                "model": "demo",
                "conversation_id": "new",
                "messages": [{"role": "user", "content": long_message}],
            },
        ),
        (
            "openai-system-stored",
            "POST",
            chat,
            {
                "model": "demo",
                "conversation_id": "new",
                "messages": [
                    {"role": "system", "content": long_system},
                    {"role": "user", "content": "hi"},
                ],
            },
        ),
    ]


@pytest.mark.parametrize(
    ("name", "method", "path", "body"), _sizes_cases(), ids=[c[0] for c in _sizes_cases()]
)
def test_a_message_or_system_prompt_over_its_limit_is_not_stored(
    gateway: Gateway, user: httpx.Client, name: str, method: str, path: str, body: dict[str, Any]
) -> None:
    before = len(gateway.stored_messages())
    response = user.request(method, path, json=body)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["param"] in ("content", "system")
    assert len(gateway.stored_messages()) == before


def test_edits_and_system_changes_have_the_same_limits(
    gateway: Gateway, user: httpx.Client
) -> None:
    reply = user.post(
        "/api/v1/conversations/new/messages", json={"content": "hi", "stream": False}
    ).json()
    conversation, question = reply["conversation_id"], reply["parent_id"]
    edit = user.post(
        f"/api/v1/conversations/{conversation}/messages/{question}/edit",
        json={"content": "e" * (MESSAGE_LIMIT + 1)},
    )
    patch = user.patch(
        f"/api/v1/conversations/{conversation}", json={"system": "s" * (SYSTEM_LIMIT + 1)}
    )
    assert (edit.status_code, patch.status_code) == (413, 413)
    assert user.post(
        f"/api/v1/conversations/{conversation}/messages/{question}/edit",
        json={"content": "e" * MESSAGE_LIMIT, "stream": False},
    ).is_success


# ---- numbers out of bounds ------------------------------------------------------------------

HUGE = [2**63, 2**64, -(2**63) - 1, 10**30]
QUESTION = [{"role": "user", "content": "x"}]


@dataclass(frozen=True)
class Call:
    name: str
    method: str
    path: str
    body: Callable[[int], Any] | None = None
    as_admin: bool = False
    query: Callable[[int], dict[str, Any]] = field(default=lambda n: {})


CALLS = [
    Call("own-key-id", "DELETE", "/api/v1/keys/{n}"),
    Call("admin-key-id", "DELETE", "/api/v1/admin/keys/{n}", as_admin=True),
    Call("admin-key-quota-id", "PUT", "/api/v1/admin/keys/{n}/quota", lambda n: {}, True),
    Call("user-quota-field", "PUT", "/api/v1/admin/users/mallory/quota",
         lambda n: {"daily_requests": n}, True),
    Call("user-tokens-field", "PUT", "/api/v1/admin/users/mallory/quota",
         lambda n: {"daily_tokens": n}, True),
    Call("key-quota-field", "PUT", "/api/v1/admin/keys/1/quota", lambda n: {"rpm": n}, True),
    Call("key-expiry", "POST", "/api/v1/keys", lambda n: {"expires_days": n}),
    Call("list-limit", "GET", "/api/v1/conversations", query=lambda n: {"limit": n}),
    Call("native-max-tokens", "POST", "/api/v1/conversations/new/messages",
         lambda n: {"content": "hi", "max_tokens": n, "stream": False}),
    Call("openai-max-tokens", "POST", "/v1/chat/completions",
         lambda n: {"model": "demo", "max_tokens": n, "messages": QUESTION}),
    Call("openai-n", "POST", "/v1/chat/completions",
         lambda n: {"model": "demo", "n": n, "messages": QUESTION}),
    Call("openai-seed", "POST", "/v1/completions",
         lambda n: {"model": "demo", "seed": n, "prompt": "x"}),
]  # fmt: skip


@pytest.mark.parametrize("number", HUGE, ids=[str(n) for n in HUGE])
@pytest.mark.parametrize("call", CALLS, ids=[c.name for c in CALLS])
def test_every_number_from_outside_has_bounds(
    gateway: Gateway, admin: httpx.Client, user: httpx.Client, call: Call, number: int
) -> None:
    client = admin if call.as_admin else user
    response = client.request(
        call.method,
        call.path.format(n=number),
        params=call.query(number),
        content=None if call.body is None else str(call.body(number)).replace("'", '"'),
        headers={"content-type": "application/json"},
    )
    assert response.status_code in (400, 404, 422), (response.status_code, response.text)
    assert response.json()["error"]["message"]
    assert user.get("/api/v1/auth/me").is_success


# ---- JSON is parsed strictly ----------------------------------------------------------------

NOT_NUMBERS = ["NaN", "Infinity", "-Infinity"]
STRICT = [
    ("POST", "/api/v1/keys", '{{"expires_days": {v}}}', False),
    ("POST", "/api/v1/admin/users/mallory/keys", '{{"expires_days": {v}}}', True),
    ("PUT", "/api/v1/admin/users/mallory/quota", '{{"rpm": {v}}}', True),
    ("POST", "/api/v1/conversations/new/messages", '{{"content": "x", "temperature": {v}}}', False),
    ("PUT", "/api/v1/admin/providers/p", '{{"base_url": "http://x", "weight": {v}}}', True),
    ("POST", "/v1/chat/completions", '{{"model": "demo", "top_p": {v}, "messages": []}}', False),
]  # fmt: skip


def test_an_id_past_the_id_columns_of_either_database_is_a_422(gateway: Gateway) -> None:
    headers = {"Authorization": f"Bearer {gateway.key('alice')}"}
    for n in (2**31, 2**63 - 1):  # past PostgreSQL's INTEGER; past SQLite's too
        answer = httpx.delete(f"{gateway.url}/api/v1/keys/{n}", headers=headers)
        assert answer.status_code == 422, (n, answer.text)
    largest = httpx.delete(f"{gateway.url}/api/v1/keys/{2**31 - 1}", headers=headers)
    assert largest.status_code == 404, largest.text


@pytest.mark.parametrize("value", NOT_NUMBERS)
@pytest.mark.parametrize(("method", "path", "body", "as_admin"), STRICT, ids=[s[1] for s in STRICT])
def test_nan_and_infinity_are_not_json(
    gateway: Gateway,
    admin: httpx.Client,
    user: httpx.Client,
    method: str,
    path: str,
    body: str,
    as_admin: bool,
    value: str,
) -> None:
    keys_before = len(admin.get("/api/v1/admin/keys").json())
    client = admin if as_admin else user
    response = client.request(
        method, path, content=body.format(v=value), headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["message"]
    assert len(admin.get("/api/v1/admin/keys").json()) == keys_before


def test_every_native_route_parses_json_strictly(gateway: Gateway) -> None:
    from fastapi.routing import APIRoute

    from chatgate.transports.http_common import StrictRoute

    loose = [
        route.path
        for route in gateway.app.routes
        if isinstance(route, APIRoute) and not isinstance(route, StrictRoute)
    ]
    assert loose == []


# ---- forged writes with the login cookie -----------------------------------------------------


@pytest.fixture
def cookie_client(gateway: Gateway) -> Iterator[httpx.Client]:
    """A browser's view: logged in with the HttpOnly cookie only."""
    with httpx.Client(base_url=gateway.url) as client:
        client.post(
            "/api/v1/auth/login",
            json={"username": "mallory", "password": "mallory-password", "cookie": True},
        ).raise_for_status()
        yield client


COOKIE_WRITES = [
    ("POST", "/v1/chat/completions", {"model": "demo", "messages": QUESTION}),
    ("POST", "/ask/new", {"prompt": "hello"}),
    ("POST", "/api/v1/conversations/new/messages", {"content": "x", "stream": False}),
    ("POST", "/api/v1/keys", {"name": "forged"}),
    ("POST", "/api/v1/auth/logout", None),
]  # fmt: skip
FORGERIES = {
    "foreign-origin": ({"origin": "https://evil.example"}, 403),
    "null-origin": ({"origin": "null"}, 403),
    "cross-site-fetch": ({"sec-fetch-site": "cross-site"}, 403),
    "same-site-fetch": ({"sec-fetch-site": "same-site", "origin": "https://a.example"}, 403),
}


def _send(client: httpx.Client, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    content = b"" if body is None else httpx.Request("POST", "/", json=body).content
    return client.request(method, path, content=content, headers=headers)


@pytest.mark.parametrize("forgery", list(FORGERIES))
@pytest.mark.parametrize(
    ("method", "path", "body"), COOKIE_WRITES, ids=[p for _, p, _ in COOKIE_WRITES]
)
def test_a_write_another_site_makes_with_the_login_cookie_is_refused(
    cookie_client: httpx.Client, method: str, path: str, body: Any, forgery: str
) -> None:
    headers, status = FORGERIES[forgery]
    response = _send(
        cookie_client, method, path, body, {"content-type": "application/json", **headers}
    )
    assert response.status_code == status, response.text
    error = response.json()
    assert error.get("detail") if path.startswith("/ask") else error["error"]["message"]
    assert cookie_client.get("/api/v1/auth/me").is_success, "the forged logout went through"


@pytest.mark.parametrize(
    ("method", "path", "body"), COOKIE_WRITES, ids=[p for _, p, _ in COOKIE_WRITES]
)
@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_cookie_write_must_send_json(
    cookie_client: httpx.Client, method: str, path: str, body: Any, kind: str | None
) -> None:
    if body is None:
        body = {"everywhere": False}
    headers = {"sec-fetch-site": "same-origin"}
    if kind is not None:
        headers["content-type"] = kind
    content = httpx.Request("POST", "/", json=body).content
    response = cookie_client.request(method, path, content=content, headers=headers)
    assert response.status_code == 415, response.text
    assert cookie_client.get("/api/v1/auth/me").is_success


@pytest.mark.parametrize(
    ("method", "path", "body"), COOKIE_WRITES, ids=[p for _, p, _ in COOKIE_WRITES]
)
@pytest.mark.parametrize("same", ["sec-fetch-site", "origin", "neither"])
def test_the_sites_own_pages_write_with_the_cookie(
    gateway: Gateway, cookie_client: httpx.Client, method: str, path: str, body: Any, same: str
) -> None:
    headers = {"content-type": "application/json"}
    if same == "sec-fetch-site":
        headers["sec-fetch-site"] = "same-origin"
    elif same == "origin":
        headers["origin"] = gateway.url
    response = _send(cookie_client, method, path, body, headers)
    assert response.is_success, response.text


def test_bearer_clients_are_not_held_to_the_cookie_rules(
    gateway: Gateway, user: httpx.Client
) -> None:
    """curl -d sends a form content type; an SDK may run in a page on another origin."""
    body = httpx.Request("POST", "/", json=COOKIE_WRITES[0][2]).content
    for headers in (
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "text/plain", "origin": "https://elsewhere.example"},
        {"sec-fetch-site": "cross-site", "content-type": "application/json"},
    ):
        response = user.post("/v1/chat/completions", content=body, headers=headers)
        assert response.status_code == 200, response.text


# ---- the last resort --------------------------------------------------------------------------


def test_a_server_fault_is_a_500_in_openais_shape_and_the_server_keeps_serving(
    make_gateway: Callable[..., Gateway],
) -> None:
    """The conversations table disappears under the server: every route that needs it fails
    with a JSON 500 (not a plain-text one), and the others keep working."""
    broken = make_gateway(conversation_titles=False, conversation_cache_size=0)
    key = broken.key("eve")
    headers = {"Authorization": f"Bearer {key}"}
    first = httpx.post(
        broken.url + "/api/v1/conversations/new/messages",
        json={"content": "hi", "stream": False},
        headers=headers,
    ).json()["conversation_id"]
    broken.flush()

    async def drop() -> None:
        # PostgreSQL drops the foreign keys that point at them only when told to.
        cascade = "" if broken.services.db.is_sqlite else " CASCADE"
        async with broken.services.db.session() as session:
            await session.execute(text("DROP TABLE messages" + cascade))
            await session.execute(text("DROP TABLE conversations" + cascade))
            await session.commit()

    broken.run(drop())
    question = [{"role": "user", "content": "hi"}]
    for method, path, body in [
        ("GET", "/api/v1/conversations", None),
        ("GET", f"/api/v1/conversations/{first}", None),
        ("POST", f"/api/v1/conversations/{first}/messages", {"content": "hi"}),
        ("POST", "/v1/chat/completions", {"model": "demo", "conversation_id": first,
                                           "messages": question}),
        ("POST", "/v1/chat/completions", {"model": "demo", "conversation_id": first,
                                           "messages": question, "stream": True}),
    ]:  # fmt: skip
        response = httpx.request(method, broken.url + path, json=body, headers=headers)
        assert response.status_code == 500, (path, response.text)
        error = response.json()["error"]
        assert error["type"] == "server_error" and "DROP" not in error["message"]
    ok = httpx.post(
        broken.base_url + "/chat/completions",
        json={"model": "demo", "messages": question},
        headers=headers,
    )
    assert ok.status_code == 200
