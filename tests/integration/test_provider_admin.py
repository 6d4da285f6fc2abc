"""Providers and models changed while serving: the admin API, the TOML reload, and streams
that keep going through it all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from faulty_upstream import FaultyUpstream, ok
from support import Gateway
from upstream_rig import eventually

from chatgate.providers.openai_compat import OpenAICompatProvider


@pytest.fixture
def primary() -> Iterator[FaultyUpstream]:
    upstream = FaultyUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture
def backup() -> Iterator[FaultyUpstream]:
    upstream = FaultyUpstream().start()
    yield upstream
    upstream.stop()


def _provider(upstream: FaultyUpstream, **extra: object) -> dict[str, object]:
    return {
        "base_url": upstream.base_url,
        "timeouts": {"connect": 1, "first_token": 2, "idle": 2, "total": 10},
        "discover_models": False,
        **extra,
    }


@pytest.fixture
def admin_gateway(
    make_gateway: Callable[..., Gateway], primary: FaultyUpstream
) -> Iterator[tuple[Gateway, httpx.Client]]:
    gateway = make_gateway(
        providers=[
            {
                "name": "primary",
                **_provider(primary),
                "api_keys": ["sk-upstream-secret"],
            }
        ],
        models=[{"name": "gpt-4o", "deployments": ["primary"], "upstream_name": "demo"}],
    )
    gateway.user("root", admin=True)
    with httpx.Client(
        base_url=gateway.url + "/api/v1/admin",
        headers={"Authorization": f"Bearer {gateway.key('root')}"},
        timeout=10,
    ) as client:
        yield gateway, client


def _chat(gateway: Gateway, key: str, model: str) -> str:
    api = openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)
    reply = api.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return reply.choices[0].message.content or ""


def test_providers_are_listed_without_keys_header_values_or_proxy_passwords(
    admin_gateway: tuple[Gateway, httpx.Client],
) -> None:
    _, admin = admin_gateway
    added = admin.put(
        "/providers/proxied",
        json={
            "base_url": "https://api.example.com/v1",
            "api_keys": ["sk-upstream-secret"],
            "headers": {"x-team-token": "header-secret"},
            "proxy": "http://proxyuser:proxy-secret@127.0.0.1:3128",
            "discover_models": False,
        },
    )
    assert added.status_code == 200
    response = admin.get("/providers")
    assert response.status_code == 200
    assert {p["name"] for p in response.json()["data"]} == {"primary", "proxied"}
    [provider] = [p for p in response.json()["data"] if p["name"] == "proxied"]
    assert provider["keys"] == 1 and provider["headers"] == ["x-team-token"]
    assert provider["proxy"] == "http://proxyuser:***@127.0.0.1:3128"
    for secret in ("sk-upstream-secret", "header-secret", "proxy-secret"):
        assert secret not in response.text


def test_only_administrators_may_change_providers(
    admin_gateway: tuple[Gateway, httpx.Client],
) -> None:
    gateway, _ = admin_gateway
    with httpx.Client(
        base_url=gateway.url + "/api/v1/admin",
        headers={"Authorization": f"Bearer {gateway.key('alice')}"},
    ) as user:
        assert user.get("/providers").status_code == 403
        assert user.put("/models/x", json={"deployments": ["primary"]}).status_code == 403
    assert httpx.get(gateway.url + "/api/v1/admin/providers").status_code == 401


def test_a_provider_replaced_mid_stream_lets_the_stream_finish_then_closes_its_client(
    admin_gateway: tuple[Gateway, httpx.Client], primary: FaultyUpstream, backup: FaultyUpstream
) -> None:
    gateway, admin = admin_gateway
    primary.default = ok(delay=0.02)
    old = gateway.services.models.providers["primary"]
    assert isinstance(old, OpenAICompatProvider)
    api = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key("alice"), max_retries=0)
    stream = api.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Keep going"}], stream=True
    )
    chunks = iter(stream)
    first = [next(chunks) for _ in range(3)]
    moved = admin.put("/providers/primary", json=_provider(backup))
    assert moved.status_code == 200 and moved.json()["keys"] == 1  # the key was kept
    assert old.connector is not None and not old.connector.closed, "in use: still open"
    rest = list(chunks)
    text = "".join(c.choices[0].delta.content or "" for c in first + rest if c.choices)
    assert "Keep going" in text
    assert [c.choices[0].finish_reason for c in rest if c.choices][-1] == "stop"
    eventually(lambda: old.connector is None, "the replaced provider's client was closed")
    _chat(gateway, gateway.key("alice"), "gpt-4o")
    assert len(primary.chat_requests()) == 1
    [seen] = backup.chat_requests()
    assert seen.headers["authorization"] == "Bearer sk-upstream-secret"


def test_models_added_and_removed_through_the_api(
    admin_gateway: tuple[Gateway, httpx.Client],
) -> None:
    gateway, admin = admin_gateway
    key = gateway.key("alice")
    api = openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)
    added = admin.put(
        "/models/house-model",
        json={
            "deployments": ["primary"],
            "upstream_name": "demo",
            "aliases": ["house"],
            "input_price": 1.5,
        },
    )
    assert added.status_code == 200 and added.json()["input_price"] == 1.5
    assert {"gpt-4o", "house-model", "house"} <= {m.id for m in api.models.list()}
    assert "You asked" in _chat(gateway, key, "house")
    assert admin.delete("/models/house-model").status_code == 204
    assert "house" not in {m.id for m in api.models.list()}
    with pytest.raises(openai.NotFoundError):
        _chat(gateway, key, "house-model")


def test_a_change_that_would_break_routing_is_refused_and_nothing_changes(
    admin_gateway: tuple[Gateway, httpx.Client],
) -> None:
    gateway, admin = admin_gateway
    response = admin.put("/models/orphan", json={"deployments": ["nowhere"]})
    assert response.status_code == 409 and "nowhere" in response.json()["error"]["message"]
    assert admin.delete("/providers/primary").status_code == 409  # gpt-4o still uses it
    bad = admin.put("/providers/primary", json={"kind": "carrier-pigeon"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "kind"
    assert "You asked" in _chat(gateway, gateway.key("alice"), "gpt-4o")
    assert admin.delete("/models/nothing-here").status_code == 404


def test_models_limited_to_a_role_are_hidden_from_everyone_else(
    admin_gateway: tuple[Gateway, httpx.Client],
) -> None:
    gateway, admin = admin_gateway
    admin.put(
        "/models/staff-only",
        json={"deployments": ["primary"], "upstream_name": "demo", "allowed_roles": ["admin"]},
    )
    alice = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key("alice"), max_retries=0)
    root = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key("root"), max_retries=0)
    assert "staff-only" not in {m.id for m in alice.models.list()}
    assert "staff-only" in {m.id for m in root.models.list()}
    with pytest.raises(openai.NotFoundError):
        _chat(gateway, gateway.key("alice"), "staff-only")
    assert "You asked" in _chat(gateway, gateway.key("root"), "staff-only")


def _toml(primary: FaultyUpstream, model: str) -> str:
    return f"""
[[providers]]
name = "primary"
base_url = "{primary.base_url}"
discover_models = false
timeouts = {{ connect = 1, first_token = 1, idle = 1, total = 5 }}

[[models]]
name = "{model}"
deployments = ["primary"]
upstream_name = "demo"
output_price = 10.0

[routing]
retries = 0
"""


def test_the_toml_file_is_reloaded_on_request(
    make_gateway: Callable[..., Gateway], primary: FaultyUpstream, tmp_path: Path
) -> None:
    config = tmp_path / "chatgate.toml"
    config.write_text(_toml(primary, "first-model"))
    gateway = make_gateway(config_file=config)
    gateway.user("root", admin=True)
    admin = httpx.Client(
        base_url=gateway.url + "/api/v1/admin",
        headers={"Authorization": f"Bearer {gateway.key('root')}"},
    )
    api = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key("alice"), max_retries=0)
    with admin, api:
        _reload_story(config, primary, admin, api, gateway)


def _reload_story(
    config: Path, primary: FaultyUpstream, admin: httpx.Client, api: openai.OpenAI, gateway: Gateway
) -> None:
    assert "first-model" in {m.id for m in api.models.list()}

    config.write_text(_toml(primary, "second-model"))
    assert admin.post("/providers/reload").json() == {"providers": 1, "models": 1}
    names = {m.id for m in api.models.list()}
    assert "second-model" in names and "first-model" not in names
    assert gateway.services.models.settings.routing.retries == 0

    config.write_text(
        _toml(primary, "second-model") + '\n[model_aliases]\n"old-name" = "second-model"\n'
    )
    assert admin.post("/providers/reload").status_code == 200
    assert "old-name" in {m.id for m in api.models.list()}, "aliases are reloaded too"

    config.write_text("[[models]\nname = broken")
    refused = admin.post("/providers/reload")
    assert refused.status_code == 400 and "config file" in refused.json()["error"]["message"]
    assert "second-model" in {m.id for m in api.models.list()}


# ---- what the admin API refuses: a provider is a URL the server calls, with a key it sends --


@pytest.mark.parametrize(
    "base_url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "unix:///var/run/docker.sock",
        "ftp://files.example.com/v1",
        "javascript:alert(1)",
        "//api.example.com/v1",
        "localhost:11434/v1",
        "http://",
        "https://api.example.com/v1?api-version=1",
        "https://api.example.com/v1#part",
        "http://127.0.0.1:8000/v1?",
    ],
)
def test_a_base_url_that_is_not_a_plain_http_url_is_refused(
    admin_gateway: tuple[Gateway, httpx.Client], base_url: str
) -> None:
    _, admin = admin_gateway
    refused = admin.put("/providers/probe", json={"base_url": base_url})
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == "base_url" and "base_url must" in error["message"]
    assert "probe" not in {p["name"] for p in admin.get("/providers").json()["data"]}


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:11434/v1",
        "http://localhost:8000/v1",
        "http://[::1]:8000/v1",
        "https://api.example.com/v1",
        "HTTPS://API.EXAMPLE.COM/v1",
        "http://10.0.0.7/openai/v1",
    ],
)
def test_local_and_remote_http_urls_are_accepted(
    admin_gateway: tuple[Gateway, httpx.Client], base_url: str
) -> None:
    _, admin = admin_gateway
    added = admin.put("/providers/local", json={"base_url": base_url, "discover_models": False})
    assert added.status_code == 200, added.text
    assert added.json()["base_url"] == base_url


@pytest.fixture
def envs_gateway(
    make_gateway: Callable[..., Gateway], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Gateway, httpx.Client]]:
    """An operator who lets providers read their key from TEAM_UPSTREAM_KEY, and no other."""
    monkeypatch.setenv("TEAM_UPSTREAM_KEY", "sk-team-upstream")
    monkeypatch.setenv("OTHER_UPSTREAM_KEY", "sk-other-upstream")
    gateway = make_gateway(provider_key_envs_allowed=["TEAM_UPSTREAM_KEY"])
    gateway.user("root", admin=True)
    with httpx.Client(
        base_url=gateway.url + "/api/v1/admin",
        headers={"Authorization": f"Bearer {gateway.key('root')}"},
        timeout=10,
    ) as client:
        yield gateway, client


@pytest.mark.parametrize(
    "names",
    [
        ["CHATGATE_SECRET_KEY"],
        ["chatgate_secret_key"],
        ["CHATGATE_DATABASE_URL"],
        ["OTHER_UPSTREAM_KEY"],
        ["HOME"],
        ["TEAM_UPSTREAM_KEY", "PATH"],
    ],
)
def test_key_variables_named_through_the_api_must_be_on_the_operators_list(
    envs_gateway: tuple[Gateway, httpx.Client], primary: FaultyUpstream, names: list[str]
) -> None:
    _, admin = envs_gateway
    refused = admin.put("/providers/probe", json=_provider(primary, api_key_envs=names))
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == "api_key_envs" and "provider_key_envs_allowed" in error["message"]
    assert "probe" not in {p["name"] for p in admin.get("/providers").json()["data"]}
    assert primary.chat_requests() == []


def test_a_key_variable_on_the_list_is_read_and_sent_upstream(
    envs_gateway: tuple[Gateway, httpx.Client], primary: FaultyUpstream
) -> None:
    gateway, admin = envs_gateway
    added = admin.put(
        "/providers/team", json=_provider(primary, api_key_envs=["TEAM_UPSTREAM_KEY"])
    )
    assert added.status_code == 200, added.text
    assert added.json()["keys"] == 1
    assert (
        admin.put(
            "/models/team-model", json={"deployments": ["team"], "upstream_name": "demo"}
        ).status_code
        == 200
    )
    primary.enqueue(ok())
    _chat(gateway, gateway.key("alice"), "team-model")
    assert primary.chat_requests()[-1].headers["authorization"] == "Bearer sk-team-upstream"
