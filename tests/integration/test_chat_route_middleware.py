"""The chat routes take a short way past FastAPI's middleware stack, but only while there is
no middleware of chatgate's own that would then miss them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.testclient import TestClient

from chatgate.app import create_app

Next = Callable[[Request], Awaitable[Response]]


def test_chat_requests_answer_in_openai_shape_on_the_short_way(
    make_settings: Callable[..., Any],
) -> None:
    app = create_app(make_settings())
    with TestClient(app) as client:
        reply = client.post("/v1/chat/completions", json={"model": "demo", "messages": []})
        missing = client.post("/v1/completions", headers={"authorization": "Bearer sk-cg-x"})
    assert reply.status_code == 401
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert missing.status_code == 401


def test_an_installed_middleware_sees_every_chat_request(make_settings: Callable[..., Any]) -> None:
    app = create_app(make_settings())
    seen: list[str] = []

    @app.middleware("http")
    async def note(request: Request, call_next: Next) -> Response:
        seen.append(request.url.path)
        response = await call_next(request)
        response.headers["x-noted"] = "yes"
        return response

    with TestClient(app) as client:
        reply = client.post("/v1/chat/completions", json={"model": "demo", "messages": []})
    assert seen == ["/v1/chat/completions"]
    assert reply.status_code == 401 and reply.headers["x-noted"] == "yes"
