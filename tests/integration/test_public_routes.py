"""Every route of the app is either on the explicit public list or refuses a caller without
credentials. A route added without authentication fails here."""

from __future__ import annotations

import asyncio
import re

import httpx
import websockets
from starlette.routing import Mount, Route, WebSocketRoute
from support import Gateway

from chatgate.app import PUBLIC_PATHS

_PARAM = re.compile(r"{([^}:]+)(:[^}]+)?}")


def concrete(path: str) -> str:
    """A path with every parameter filled in with something plausible."""
    return _PARAM.sub(lambda m: "1", path)


def all_routes(routes: list[object], prefix: str = "") -> list[tuple[str, object]]:
    """Every endpoint, through mounts and included routers (FastAPI keeps those lazily)."""
    found: list[tuple[str, object]] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            found += all_routes(list(included.routes), prefix + getattr(context, "prefix", ""))
        elif isinstance(route, Mount):
            path = prefix + route.path
            if path in PUBLIC_PATHS:
                continue
            found += all_routes(list(route.routes), path)
        elif isinstance(route, Route | WebSocketRoute):
            found.append((prefix + route.path, route))
    return found


async def _websocket_refuses(url: str) -> bool:
    """Refused at the handshake, or closed (or answered with an error) before any work."""
    try:
        async with websockets.connect(url, open_timeout=5) as ws:
            try:
                await ws.send("{}")
                reply = await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd is not None and closed.rcvd.code in (1008, 4001, 4003, 4401)
            text = reply if isinstance(reply, str) else reply.decode(errors="replace")
            return any(word in text.lower() for word in ("auth", "401", "credential", "key"))
    except websockets.InvalidStatus as refused:
        return refused.response.status_code in (401, 403)


def test_every_route_is_public_or_refuses_anonymous_callers(gateway: Gateway) -> None:
    routes = all_routes(list(gateway.app.routes))
    documented = set(httpx.get(gateway.url + "/openapi.json").json()["paths"])
    enumerated = {_PARAM.sub(r"{\1}", path) for path, _ in routes}
    assert documented <= enumerated, "some routes were not enumerated"
    checked = 0
    offenders: list[str] = []
    with httpx.Client(base_url=gateway.url) as client:
        for path, route in routes:
            if path in PUBLIC_PATHS:
                continue
            url = concrete(path)
            if isinstance(route, WebSocketRoute):
                ws_url = f"ws://127.0.0.1:{gateway.port}{url}"
                if not asyncio.run(_websocket_refuses(ws_url)):
                    offenders.append(f"WS {path}")
                checked += 1
                continue
            assert isinstance(route, Route)
            for method in sorted((route.methods or {"GET"}) - {"HEAD", "OPTIONS"}):
                response = client.request(method, url, json={})
                checked += 1
                if response.status_code != 401:
                    offenders.append(f"{method} {path} -> {response.status_code}")
    assert offenders == []
    assert checked > 20


def test_public_routes_answer_without_credentials(gateway: Gateway) -> None:
    for path in ("/healthz", "/readyz", "/docs", "/openapi.json"):
        assert httpx.get(gateway.url + path).status_code == 200
    login = httpx.post(gateway.url + "/api/v1/auth/login", json={"username": "x", "password": "y"})
    assert login.status_code == 401
    token = httpx.post(gateway.url + "/token", json={"u": "x", "p": "y"})
    assert token.status_code == 401 and token.json()["statu"] is False
