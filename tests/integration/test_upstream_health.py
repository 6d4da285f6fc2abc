"""Upstream health for the console: each provider and deployment with its recent requests,
errors, latency, breaker and models found, never a key; and the models with their aliases."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from faulty_upstream import FaultyUpstream, status
from support import Gateway, remember

ADMIN_PASSWORD = remember("thistle-Badger-7734")
UPSTREAM_KEY = remember("sk-upstream-Hk29fQ7x")
CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    server = FaultyUpstream(models=("demo", "demo-large")).start()
    yield server
    server.stop()


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway], upstream: FaultyUpstream) -> Gateway:
    return make_gateway(
        providers=[{"name": "flaky", "base_url": upstream.base_url, "api_keys": [UPSTREAM_KEY]}],
        models=[
            {
                "name": "solo",
                "aliases": ["solo-alias"],
                "deployments": ["flaky"],
                "upstream_name": "demo",
            }
        ],
        model_aliases={"gpt-4o": "solo"},
        routing={"retries": 0, "breaker_failures": 1, "breaker_cooldown": 60},
        models_refresh_seconds=0,
    )


@pytest.fixture
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    gateway.user("root", ADMIN_PASSWORD, admin=True)
    token = gateway.login("root", ADMIN_PASSWORD)
    with httpx.Client(
        base_url=gateway.url + "/api/v1/admin", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client


def health(admin: httpx.Client) -> dict[str, Any]:
    answer = admin.get("/providers/health")
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def test_a_failing_deployment_shows_its_errors_its_rest_and_the_last_message(
    gateway: Gateway, admin: httpx.Client, upstream: FaultyUpstream
) -> None:
    api = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key("amy"), max_retries=0)
    api.chat.completions.create(model="solo", **CHAT)
    upstream.enqueue(status(500, f"the key {UPSTREAM_KEY} is over its budget"))
    with pytest.raises(openai.InternalServerError):
        api.chat.completions.create(model="solo", **CHAT)
    before = time.time()

    found = health(admin)
    assert found["window_seconds"] == 3600
    [flaky] = [p for p in found["providers"] if p["name"] == "flaky"]
    assert flaky["models_found"] == ["demo", "demo-large"] and flaky["models_error"] is None
    assert flaky["traffic"]["requests"] == 2 and flaky["traffic"]["errors"] == 1
    assert flaky["traffic"]["latency_ms"] is not None
    assert flaky["traffic"]["last_error_code"] == "upstream_unavailable"
    deployments = {d["model"]: d for d in flaky["deployments"]}
    assert set(deployments) == {"solo", "demo", "demo-large"}  # configured, and found
    solo = deployments["solo"]
    assert solo["upstream_model"] == "demo"
    assert deployments["demo-large"]["state"] == "closed"  # another upstream model
    assert solo["state"] == "open" and solo["resting"] is True
    assert solo["resting_until"] > before + 50
    assert solo["failures"]["count"] == 1
    last = solo["failures"]["last"]
    assert last["code"] == "upstream_unavailable" and "over its budget" in last["message"]
    assert UPSTREAM_KEY not in str(found) and "***" in last["message"]


def test_a_healthy_upstream_rests_not_and_models_come_with_their_aliases(
    gateway: Gateway, admin: httpx.Client
) -> None:
    api = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key("ben"), max_retries=0)
    api.chat.completions.create(model="gpt-4o", **CHAT)
    found = health(admin)
    [flaky] = [p for p in found["providers"] if p["name"] == "flaky"]
    [solo] = [d for d in flaky["deployments"] if d["model"] == "solo"]
    assert solo["state"] == "closed" and solo["resting"] is False and solo["retry_in"] is None
    assert solo["failures"] == {"count": 0, "last": None}
    assert solo["traffic"]["requests"] == 1 and solo["traffic"]["first_token_ms"] is not None
    models = {m["name"]: m for m in found["models"]}
    assert models["solo"]["aliases"] == ["gpt-4o", "solo-alias"]
    assert models["solo"]["deployments"] == [{"provider": "flaky", "upstream_model": "demo"}]
    assert models["solo"]["discovered"] is False
    assert models["demo-large"]["discovered"] is True


def test_normal_users_may_not_see_upstream_health(gateway: Gateway) -> None:
    key = gateway.key("cy")
    answer = httpx.get(
        gateway.url + "/api/v1/admin/providers/health",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 403
