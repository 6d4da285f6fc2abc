"""Keys used in turn, deployments rested and tried again, Azure OpenAI's own wire details."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest
from faulty_upstream import FaultyUpstream, ok, status
from support import Gateway
from upstream_rig import TIMEOUTS

from chatgate.core.errors import UpstreamCoolingDown
from chatgate.providers.base import UpstreamCall
from chatgate.providers.router import ModelRegistry, Served
from chatgate.settings import Settings


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


def _provider(name: str, upstream: FaultyUpstream, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "base_url": upstream.base_url,
        "timeouts": TIMEOUTS,
        "discover_models": False,
        **extra,
    }


class Clock:
    def __init__(self) -> None:
        self.at = 0.0

    def __call__(self) -> float:
        return self.at


async def _ask(registry: ModelRegistry, model: str) -> str:
    """One streamed question; the name of the provider that answered."""
    route = registry.resolve(model)
    served = Served()
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async for _ in registry.stream(route, UpstreamCall(body), served):
        pass
    assert served.provider is not None
    return served.provider


def test_two_keys_of_one_provider_are_used_in_turn(
    make_gateway: Callable[..., Gateway], primary: FaultyUpstream
) -> None:
    gateway = make_gateway(
        providers=[_provider("primary", primary, api_keys=["key-a", "key-b"])],
        models=[{"name": "gpt-4o", "upstream_name": "demo"}],
    )
    api = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key("alice"), max_retries=0)
    primary.enqueue(ok(), status(429, retry_after_ms="1"), ok(), ok())
    for _ in range(3):
        api.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    keys = [seen.headers["authorization"] for seen in primary.chat_requests()]
    # The second question was rate limited and retried: the retry went out with the next key.
    assert keys == ["Bearer key-a", "Bearer key-b", "Bearer key-a", "Bearer key-b"]


async def test_a_failing_deployment_is_rested_then_tried_again_after_its_cooldown(
    make_settings: Callable[..., Settings], primary: FaultyUpstream, backup: FaultyUpstream
) -> None:
    settings = make_settings(
        providers=[_provider("primary", primary), _provider("backup", backup)],
        models=[{"name": "gpt-4o", "deployments": ["primary", "backup"], "upstream_name": "demo"}],
        routing={"retries": 0, "breaker_failures": 2, "breaker_cooldown": 30},
        models_refresh_seconds=0,
    )
    registry = ModelRegistry(settings)
    clock = Clock()
    registry.health.now = clock
    try:
        primary.default = status(503)
        assert [await _ask(registry, "gpt-4o") for _ in range(2)] == ["backup", "backup"]
        assert len(primary.chat_requests()) == 2
        # Two failures in a row: the primary is resting and is not even asked.
        clock.at += 29
        assert await _ask(registry, "gpt-4o") == "backup"
        assert len(primary.chat_requests()) == 2
        # After the cooldown one request probes it; it has recovered and serves again.
        primary.default = ok()
        clock.at += 2
        assert await _ask(registry, "gpt-4o") == "primary"
        assert await _ask(registry, "gpt-4o") == "primary"
        assert len(primary.chat_requests()) == 4
    finally:
        await registry.close()


async def test_a_failed_probe_rests_the_deployment_for_another_cooldown(
    make_settings: Callable[..., Settings], primary: FaultyUpstream, backup: FaultyUpstream
) -> None:
    settings = make_settings(
        providers=[_provider("primary", primary), _provider("backup", backup)],
        models=[{"name": "gpt-4o", "deployments": ["primary", "backup"], "upstream_name": "demo"}],
        routing={"retries": 0, "breaker_failures": 1, "breaker_cooldown": 10},
        models_refresh_seconds=0,
    )
    registry = ModelRegistry(settings)
    clock = Clock()
    registry.health.now = clock
    try:
        primary.default = status(502)
        assert await _ask(registry, "gpt-4o") == "backup"
        clock.at += 11
        assert await _ask(registry, "gpt-4o") == "backup"  # the probe failed
        assert len(primary.chat_requests()) == 2
        clock.at += 9
        assert await _ask(registry, "gpt-4o") == "backup"
        assert len(primary.chat_requests()) == 2
    finally:
        await registry.close()


async def test_when_every_deployment_rests_the_client_is_told_when_to_come_back(
    make_settings: Callable[..., Settings], primary: FaultyUpstream
) -> None:
    settings = make_settings(
        providers=[_provider("primary", primary)],
        models=[{"name": "gpt-4o", "upstream_name": "demo"}],
        routing={"retries": 0, "breaker_failures": 1, "breaker_cooldown": 20},
        models_refresh_seconds=0,
    )
    registry = ModelRegistry(settings)
    clock = Clock()
    registry.health.now = clock
    try:
        primary.default = status(500)
        with pytest.raises(Exception, match="HTTP 500"):
            await _ask(registry, "gpt-4o")
        clock.at += 5
        with pytest.raises(UpstreamCoolingDown) as info:
            await _ask(registry, "gpt-4o")
        assert info.value.status == 503 and info.value.retry_after == pytest.approx(15)
        assert len(primary.chat_requests()) == 1
    finally:
        await registry.close()


def test_azure_openai_deployment_gets_its_own_url_header_and_body(
    make_gateway: Callable[..., Gateway], primary: FaultyUpstream
) -> None:
    gateway = make_gateway(
        providers=[
            _provider(
                "azure",
                primary,
                kind="azure-openai",
                base_url=primary.url,
                deployment="gpt4o-prod",
                api_version="2024-10-21",
                api_keys=["az-secret"],
                headers={"x-team": "search"},
            )
        ],
        models=[{"name": "gpt-4o", "deployments": ["azure"], "input_price": 2.5}],
    )
    api = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key("alice"), max_retries=0)
    chunks = list(
        api.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Azure?"}], stream=True
        )
    )
    assert "Azure?" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    [seen] = primary.chat_requests()
    assert seen.path == "/openai/deployments/gpt4o-prod/chat/completions"
    assert seen.query == {"api-version": ["2024-10-21"]}
    assert seen.headers["api-key"] == "az-secret" and "authorization" not in seen.headers
    assert seen.headers["x-team"] == "search"
    assert "model" not in seen.body
