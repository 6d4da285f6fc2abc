"""The API documentation works on a machine with no internet access, and describes every HTTP
route a client can call, the OpenAI-compatible and the older programs' routes included."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest
from jsonschema import Draft202012Validator
from starlette.routing import Mount, Route
from support import Gateway

from chatgate.app import PUBLIC_PATHS
from chatgate.web.pages import PAGE_PATHS

_PARAM = re.compile(r"{([^}:]+)(:[^}]+)?}")
# Pages about the API rather than the API itself, and the web page's own paths (its HTML).
_NOT_DESCRIBED = {
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
    *(_PARAM.sub(r"{\1}", path) for path in PAGE_PATHS),
}


class _Assets(HTMLParser):
    """Every URL a page makes the browser load (scripts, styles, icons, ReDoc's spec-url)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.urls.append(value)


def _loaded_urls(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


def _http_routes(routes: list[object], prefix: str = "") -> list[tuple[str, Route]]:
    """Every HTTP route with its path as OpenAPI writes it, through included routers."""
    found: list[tuple[str, Route]] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            found += _http_routes(list(included.routes), prefix + getattr(context, "prefix", ""))
        elif isinstance(route, Route) and not isinstance(route, Mount):
            found.append((_PARAM.sub(r"{\1}", prefix + route.path), route))
    return found


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_everything_from_the_server_itself(gateway: Gateway, page: str) -> None:
    with httpx.Client(base_url=gateway.url) as client:
        html = client.get(page).text
        urls = _loaded_urls(html)
        assert any(url.endswith(".js") for url in urls), html
        assert not re.search(r"https?://", html), "the page names another host"
        for url in urls:
            assert url.startswith("/"), url
            response = client.get(url)
            assert response.status_code == 200, url
            if url.endswith(".js"):
                assert "javascript" in response.headers["content-type"]
                assert len(response.content) > 100_000  # the real bundle, not a stub
            if url.endswith(".css"):
                assert response.headers["content-type"].startswith("text/css")


def test_swagger_ui_served_is_one_that_reads_openapi_3_1(gateway: Gateway) -> None:
    """FastAPI writes OpenAPI 3.1; Swagger UI before 5 shows nothing for it."""
    document = httpx.get(gateway.url + "/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    bundle = httpx.get(gateway.url + "/docs/assets/swagger-ui-bundle.js").text
    assert "OpenAPI 3.1" in bundle or "openapi: 3.1" in bundle


def test_openapi_document_describes_the_openai_and_compatibility_routes(gateway: Gateway) -> None:
    document = httpx.get(gateway.url + "/openapi.json").json()
    paths = document["paths"]
    expected = {
        ("/v1/chat/completions", "post"),
        ("/v1/completions", "post"),
        ("/v1/models", "get"),
        ("/v1/models/{model}", "get"),
        ("/token", "post"),
        ("/api", "get"),
        ("/ask/{conversation_id}", "post"),
    }
    for path, method in expected:
        assert method in paths.get(path, {}), f"{method.upper()} {path} is not described"
    chat = paths["/v1/chat/completions"]["post"]
    body = chat["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ChatCompletionRequest"}
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert paths["/token"]["post"]["security"] == []
    for ws in ("/api/v1/ws", "/compat/ws/seq", "/compat/ws/ask"):
        assert ws in document["info"]["description"]


def test_every_reference_in_the_document_resolves(gateway: Gateway) -> None:
    document = httpx.get(gateway.url + "/openapi.json").json()
    text = httpx.get(gateway.url + "/openapi.json").text
    names = set(re.findall(r'"#/components/schemas/([^"]+)"', text))
    assert names - set(document["components"]["schemas"]) == set()


def test_every_http_route_is_described(gateway: Gateway) -> None:
    """A route added without a description fails here, whichever way it was added."""
    document = httpx.get(gateway.url + "/openapi.json").json()
    described = {
        (path, method.upper()) for path, ops in document["paths"].items() for method in ops
    }
    served: set[tuple[str, str]] = set()
    for path, route in _http_routes(list(gateway.app.routes)):
        if path not in _NOT_DESCRIBED:
            served |= {(path, m) for m in route.methods or ()} - {(path, "HEAD")}
    assert served - described == set()
    assert {p for p, _ in described} - {p for p, _ in served} == set()
    operations = [(p, op) for p, ops in document["paths"].items() for op in ops.values()]
    public = {path for path, op in operations if not op["security"]}
    assert public <= PUBLIC_PATHS


def test_a_rejected_native_request_has_the_shape_the_document_describes(gateway: Gateway) -> None:
    document = httpx.get(gateway.url + "/openapi.json").json()
    described = document["paths"]["/api/v1/keys"]["post"]["responses"]["422"]
    schema = {**described["content"]["application/json"]["schema"], **document}
    headers = {"Authorization": f"Bearer {gateway.key('alice')}"}
    answer = httpx.post(gateway.url + "/api/v1/keys", json={"name": 5}, headers=headers)
    assert answer.status_code == 422, answer.text
    assert list(Draft202012Validator(schema).iter_errors(answer.json())) == []
