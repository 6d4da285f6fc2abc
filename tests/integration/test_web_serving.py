"""The web page's server side, against a live server: the page's paths answer its HTML with a
strict CSP, its assets are cached for good and sent compressed, nothing escapes the build's
directory, and the APIs are untouched by it. A build made here stands for the real one (the
browser tests use that)."""

from __future__ import annotations

import gzip
import http.client
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import ServerThread

from chatgate.app import create_app
from chatgate.settings import Settings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
INDEX = (
    "<!doctype html><html><head><title>chatgate</title>"
    '<script type="module" src="/assets/index-3f9a1c.js"></script></head>'
    "<body><div id=app></div></body></html>"
)
SCRIPT = "export const greeting = 'hello from the page';\n" * 200
STYLE = "body { color: var(--fg); background: var(--bg); }\n" * 200
SECRET = "the server's own file, never served"


def settings(data_dir: Path) -> Settings:
    """Settings for one server, whatever the machine's environment says."""
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith("CHATGATE_") or name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
                env.delenv(name)
        return Settings.load(data_dir=data_dir, port=0, grpc_port=0, demo_chunk_delay=0.0)


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built page as the build hook leaves it: index.html, hashed assets, a ``.gz`` twin for
    the script (the style has none: it is compressed per request)."""
    tmp_path = tmp_path_factory.mktemp("web")
    static = tmp_path / "static"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text(INDEX)
    (static / "assets" / "index-3f9a1c.js").write_text(SCRIPT)
    (static / "assets" / "index-3f9a1c.js.gz").write_bytes(gzip.compress(SCRIPT.encode()))
    (static / "assets" / "index-77be20.css").write_text(STYLE)
    (tmp_path / "secret.txt").write_text(SECRET)
    os.symlink(tmp_path / "secret.txt", static / "assets" / "link.txt")
    return static


def start(web_dir: Path, data_dir: Path) -> ServerThread:
    return ServerThread(create_app(settings(data_dir), web_dir=web_dir)).start()


@pytest.fixture(scope="module")
def site(build: Path) -> Iterator[ServerThread]:
    """One server for the module: its tests only read."""
    server = start(build, build.parent / "data")
    yield server
    server.stop()


def raw_get(server: ServerThread, path: str) -> tuple[int, bytes]:
    """A GET with the path sent exactly as given (httpx would resolve ``..`` itself)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_page_comes_with_a_strict_content_security_policy(site: ServerThread) -> None:
    response = httpx.get(site.url + "/")
    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    "path", ["/c/3b8f6c1e-9d7a-4c55-8f0e-1a2b3c4d5e6f", "/login", "/account", "/setup", "/admin"]
)
def test_a_reload_on_any_of_the_pages_paths_opens_the_page(site: ServerThread, path: str) -> None:
    response = httpx.get(site.url + path)
    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["content-security-policy"] == CSP


def test_paths_below_admin_open_the_page_too(site: ServerThread) -> None:
    assert httpx.get(site.url + "/admin/users/alice").text == INDEX


def test_an_asset_is_cached_for_good_and_sent_precompressed(site: ServerThread) -> None:
    response = httpx.get(site.url + "/assets/index-3f9a1c.js")
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "accept-encoding" in response.headers["vary"].lower()
    assert response.text == SCRIPT  # httpx undid the gzip
    assert int(response.headers["content-length"]) < len(SCRIPT) // 10


def test_an_asset_without_a_gzip_twin_is_compressed_on_the_fly(site: ServerThread) -> None:
    response = httpx.get(site.url + "/assets/index-77be20.css")
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-type"].startswith("text/css")
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.text == STYLE


def test_a_browser_that_takes_no_gzip_gets_the_plain_file(site: ServerThread) -> None:
    response = httpx.get(
        site.url + "/assets/index-3f9a1c.js", headers={"Accept-Encoding": "identity"}
    )
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.content == SCRIPT.encode()


def test_an_asset_asked_again_with_its_etag_is_not_sent_again(site: ServerThread) -> None:
    first = httpx.get(site.url + "/assets/index-3f9a1c.js")
    again = httpx.get(
        site.url + "/assets/index-3f9a1c.js", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""


def test_an_unknown_asset_is_a_404(site: ServerThread) -> None:
    response = httpx.get(site.url + "/assets/index-000000.js")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/assets/../index.html",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/assets/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/assets//etc/passwd",
        "/assets/link.txt",
    ],
)
def test_no_path_reaches_a_file_outside_the_assets(site: ServerThread, path: str) -> None:
    status, body = raw_get(site, path)
    assert status in (400, 404), (path, status)
    assert SECRET.encode() not in body
    assert b"root:" not in body


def test_the_apis_are_untouched_by_the_page(site: ServerThread) -> None:
    with httpx.Client(base_url=site.url) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        models = client.get("/v1/models")
        assert models.status_code == 401
        assert models.json()["error"]["code"] == "invalid_api_key"
        me = client.get("/api/v1/me")
        assert me.status_code == 401
        assert "error" in me.json()
        docs = client.get("/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
        described = client.get("/openapi.json").json()["paths"]
        assert "/" not in described
        assert not any(p.startswith(("/c/", "/assets", "/login")) for p in described)
        unknown = client.get("/api/v1/unknown")
        assert unknown.status_code == 401  # the API's own answer: authenticate first
        assert "error" in unknown.json()
        for path in ("/c", "/chat", "/login/more"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found"


def test_without_a_build_the_page_says_how_to_build_it(tmp_path: Path) -> None:
    server = start(tmp_path / "never-built", tmp_path / "data")
    try:
        page_says_how_to_build_it(server)
    finally:
        server.stop()


def page_says_how_to_build_it(server: ServerThread) -> None:
    for path in ("/", "/c/3b8f6c1e", "/login"):
        response = httpx.get(server.url + path)
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["content-security-policy"] == CSP
        assert "npm run build" in response.text
        assert "Node.js 20" in response.text
        assert "CHATGATE_SKIP_WEB_BUILD" in response.text
        assert "Traceback" not in response.text
    assert httpx.get(server.url + "/assets/index-3f9a1c.js").status_code == 404
    assert httpx.get(server.url + "/healthz").status_code == 200
