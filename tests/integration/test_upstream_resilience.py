"""How the gateway copes with an upstream over many requests, not just one: the circuit breaker
weighs evidence from several requests, an upstream's own pause is honoured exactly, one deadline
bounds a request with all its tries, and an upstream that cannot be reached at all (refused,
DNS, TLS, a proxy that is down), or is down when the server starts, is a clear 502/503 and never
stops the server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from faulty_upstream import FaultyUpstream, garbage_after, hang_up, stall, status, whole_body
from support import LOG_LINES, Gateway, free_port
from upstream_rig import TIMEOUTS, eventually

from chatgate.core.errors import (
    ChatgateError,
    UpstreamCoolingDown,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from chatgate.providers.base import UpstreamCall
from chatgate.providers.router import ModelRegistry, Served
from chatgate.settings import Settings

QUESTION = [{"role": "user", "content": "hi"}]


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


def provider(name: str, base_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "base_url": base_url,
        "timeouts": TIMEOUTS,
        "discover_models": False,
        **extra,
    }


def routing(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "retries": 2,
        "backoff_base": 0.01,
        "backoff_max": 0.02,
        "max_retry_wait": 1.0,
        "breaker_failures": 3,
        "breaker_cooldown": 30,
    }
    values.update(overrides)
    return values


def chain_settings(
    make_settings: Callable[..., Settings],
    primary: str,
    backup: str | None = None,
    primary_extra: dict[str, Any] | None = None,
    **overrides: Any,
) -> Settings:
    """``solo`` served by ``primary``; ``chain`` by ``primary`` then ``backup``."""
    providers = [provider("primary", primary, **(primary_extra or {}))]
    models: list[dict[str, Any]] = [
        {"name": "solo", "deployments": ["primary"], "upstream_name": "demo"}
    ]
    if backup is not None:
        providers.append(provider("backup", backup))
        models.append(
            {"name": "chain", "deployments": ["primary", "backup"], "upstream_name": "demo"}
        )
    values: dict[str, Any] = {
        "providers": providers,
        "models": models,
        "routing": routing(),
        "models_refresh_seconds": 0,
    }
    values.update(overrides)
    return make_settings(**values)


async def ask(registry: ModelRegistry, model: str, *, stream: bool = True) -> str:
    """One question; the name of the provider that answered."""
    served = Served()
    body = {"model": model, "stream": stream, "messages": QUESTION}
    async for _ in registry.stream(registry.resolve(model), UpstreamCall(body), served):
        pass
    assert served.provider is not None
    return served.provider


async def failure(registry: ModelRegistry, model: str, *, stream: bool = True) -> ChatgateError:
    with pytest.raises(ChatgateError) as info:
        await ask(registry, model, stream=stream)
    return info.value


# ---- the circuit breaker weighs several requests ----------------------------------------------


async def test_one_requests_retries_do_not_rest_the_model_for_everyone(
    make_settings: Callable[..., Settings], primary: FaultyUpstream
) -> None:
    registry = ModelRegistry(chain_settings(make_settings, primary.base_url))
    try:
        primary.enqueue(status(500), status(500), status(500))
        assert isinstance(await failure(registry, "solo"), UpstreamUnavailable)
        assert len(primary.chat_requests()) == 3
        # Three failures, but all of one request: the next request is not turned away.
        assert await ask(registry, "solo") == "primary"
    finally:
        await registry.close()


async def test_failures_of_several_requests_in_a_row_open_the_breaker(
    make_settings: Callable[..., Settings], primary: FaultyUpstream
) -> None:
    settings = chain_settings(
        make_settings, primary.base_url, routing=routing(retries=1, breaker_failures=2)
    )
    registry = ModelRegistry(settings)
    try:
        primary.default = status(502)
        for _ in range(2):
            assert isinstance(await failure(registry, "solo"), UpstreamUnavailable)
        # The first request was tried twice; the second one's failure opened the breaker,
        # so it was not tried again.
        assert len(primary.chat_requests()) == 3
        resting = await failure(registry, "solo")
        assert isinstance(resting, UpstreamCoolingDown)
        assert len(primary.chat_requests()) == 3, "a resting deployment is not asked"
    finally:
        await registry.close()


async def test_a_short_retry_after_rests_the_deployment_that_long_and_no_longer(
    make_settings: Callable[..., Settings], primary: FaultyUpstream
) -> None:
    registry = ModelRegistry(chain_settings(make_settings, primary.base_url))
    try:
        primary.enqueue(*[status(429, retry_after_ms="300")] * 3)
        assert isinstance(await failure(registry, "solo"), UpstreamRateLimited)
        asked_at = time.monotonic()
        # Right after, the pause the upstream asked for still holds, and says how long.
        resting = await failure(registry, "solo")
        if time.monotonic() - asked_at < 0.25:
            assert isinstance(resting, UpstreamCoolingDown)
            assert resting.retry_after is not None and resting.retry_after <= 0.3
        await asyncio.sleep(0.35)
        assert await ask(registry, "solo") == "primary"
        assert registry.health.state(("primary", "demo")) == "closed"
    finally:
        await registry.close()


async def test_the_router_does_not_wait_to_retry_a_deployment_whose_breaker_opened(
    make_settings: Callable[..., Settings], primary: FaultyUpstream, backup: FaultyUpstream
) -> None:
    settings = chain_settings(
        make_settings,
        primary.base_url,
        backup.base_url,
        routing=routing(breaker_failures=1, backoff_base=5, backoff_max=5, max_retry_wait=10),
    )
    registry = ModelRegistry(settings)
    registry.backoff._rng = lambda: 1.0  # a wait of exactly backoff_base
    try:
        primary.enqueue(status(503))
        started = time.monotonic()
        assert await ask(registry, "chain") == "backup"
        assert time.monotonic() - started < 2.5, "it slept its backoff before the breaker"
        assert len(primary.chat_requests()) == 1
    finally:
        await registry.close()


# ---- one deadline for the whole request -------------------------------------------------------


def test_a_total_time_limit_is_not_multiplied_by_the_retries(
    make_gateway: Callable[..., Gateway], primary: FaultyUpstream
) -> None:
    """``total`` 1 s, first token allowed 5 s: a silent upstream is a 504 after about 1 s,
    asked once, not once per retry."""
    timeouts = {"connect": 1.0, "first_token": 5.0, "idle": 5.0, "total": 1.0}
    gateway = make_gateway(
        providers=[provider("primary", primary.base_url, timeouts=timeouts)],
        models=[{"name": "solo", "deployments": ["primary"], "upstream_name": "demo"}],
        routing=routing(),
        models_refresh_seconds=0,
    )
    primary.default = stall()
    started = time.monotonic()
    reply = httpx.post(
        gateway.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {gateway.key('alice')}"},
        json={"model": "solo", "stream": True, "messages": QUESTION},
        timeout=30,
    )
    assert reply.status_code == 504
    assert reply.json()["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - started < 2.5
    assert len(primary.chat_requests()) == 1


async def test_the_request_deadline_covers_every_try_and_every_fallback(
    make_settings: Callable[..., Settings], primary: FaultyUpstream, backup: FaultyUpstream
) -> None:
    timeouts = {"connect": 1.0, "first_token": 1.0, "idle": 5.0, "total": 30.0}
    settings = chain_settings(
        make_settings,
        primary.base_url,
        backup.base_url,
        primary_extra={"timeouts": timeouts},
        routing=routing(retries=1, request_deadline=1.5),
    )
    registry = ModelRegistry(settings)
    primary.default = backup.default = stall()
    try:
        started = time.monotonic()
        error = await failure(registry, "chain")
        assert isinstance(error, UpstreamTimeout)
        assert time.monotonic() - started < 2.5, "the tries ran past the request's deadline"
        # The silent primary was not asked again; the backup had what was left, half a second.
        assert len(primary.chat_requests()) == 1
        assert len(backup.chat_requests()) == 1
    finally:
        await registry.close()


async def test_a_backoff_wait_does_not_run_past_the_deadline(
    make_settings: Callable[..., Settings], primary: FaultyUpstream
) -> None:
    settings = chain_settings(
        make_settings,
        primary.base_url,
        routing=routing(backoff_base=5, backoff_max=5, request_deadline=1.0),
    )
    registry = ModelRegistry(settings)
    registry.backoff._rng = lambda: 1.0
    primary.default = status(503)
    try:
        started = time.monotonic()
        assert isinstance(await failure(registry, "solo"), UpstreamUnavailable)
        assert time.monotonic() - started < 1.5
        assert len(primary.chat_requests()) == 1
    finally:
        await registry.close()


def test_the_first_token_default_fits_an_interactive_user() -> None:
    settings = Settings()
    assert settings.upstream_timeouts.first_token <= 30
    assert settings.routing.request_deadline >= settings.upstream_timeouts.total


# ---- every way of not reaching an upstream ----------------------------------------------------


def _unreachable_urls(up: FaultyUpstream) -> list[tuple[str, str, dict[str, Any]]]:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    return [
        ("refused", closed, {}),
        ("dns", "http://no-such-host.invalid/v1", {}),
        ("tls", f"https://127.0.0.1:{up.port}/v1", {}),
        ("socks5-proxy-down", up.base_url, {"proxy": f"socks5://127.0.0.1:{free_port()}"}),
        ("http-proxy-down", up.base_url, {"proxy": f"http://127.0.0.1:{free_port()}"}),
        # The proxy answers the tunnel request with a 403 (its act below).
        ("http-proxy-refuses", f"https://127.0.0.1:{free_port()}/v1", {"proxy": up.url}),
    ]


CONNECT_FAILURES = [
    "refused",
    "dns",
    "tls",
    "socks5-proxy-down",
    "http-proxy-down",
    "http-proxy-refuses",
]


@pytest.mark.parametrize("how", CONNECT_FAILURES)
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
async def test_an_upstream_that_cannot_be_reached_is_retried_then_fallen_back(
    make_settings: Callable[..., Settings],
    primary: FaultyUpstream,
    backup: FaultyUpstream,
    how: str,
    stream: bool,
) -> None:
    [(_, url, extra)] = [u for u in _unreachable_urls(primary) if u[0] == how]
    primary.default = status(403, "tunnels are not allowed")
    settings = chain_settings(make_settings, url, backup.base_url, primary_extra=extra)
    registry = ModelRegistry(settings)
    try:
        assert await ask(registry, "chain", stream=stream) == "backup"
        error = await failure(registry, "solo", stream=stream)
        assert isinstance(error, UpstreamUnavailable) and error.retryable
        assert (error.status, error.code) == (502, "upstream_unavailable")
        assert error.message == "could not reach upstream 'primary'"
        assert primary.chat_requests() == []
    finally:
        await registry.close()


class SilentServer:
    """Accepts TCP connections and never says a word (a TLS handshake to it never ends)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                self.accepted.append(self.sock.accept()[0])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in [*self.accepted, self.sock]:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.stop()


async def test_an_upstream_that_never_completes_a_connection_is_not_asked_again(
    make_settings: Callable[..., Settings], silent: SilentServer, backup: FaultyUpstream
) -> None:
    timeouts = {"connect": 0.3, "first_token": 5.0, "idle": 5.0, "total": 30.0}
    settings = chain_settings(
        make_settings,
        f"https://127.0.0.1:{silent.port}/v1",
        backup.base_url,
        primary_extra={"timeouts": timeouts},
    )
    registry = ModelRegistry(settings)
    try:
        assert await ask(registry, "chain") == "backup"
        assert len(silent.accepted) == 1, "the silent upstream was asked once"
        error = await failure(registry, "solo")
        assert isinstance(error, UpstreamTimeout)
        assert (error.status, error.code) == (504, "upstream_timeout")
        assert error.message == "could not reach upstream 'primary' in time"
        assert len(silent.accepted) == 2
    finally:
        await registry.close()


def test_a_socks_proxy_that_is_down_neither_stops_the_server_nor_gives_a_bare_500(
    make_gateway: Callable[..., Gateway], primary: FaultyUpstream
) -> None:
    gateway = make_gateway(
        openai_base_url=primary.base_url,
        openai_api_key="sk-upstream-secret-1",
        openai_proxy=f"socks5://127.0.0.1:{free_port()}",
        models=[{"name": "gpt-4o", "upstream_name": "demo"}],
        routing=routing(),
    )
    api = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key("alice"), max_retries=0)
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as info:
            reply = api.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=stream)
            if stream:
                list(reply)  # type: ignore[arg-type]
        assert info.value.status_code == 502
        assert info.value.code == "upstream_unavailable"
        assert "sk-upstream-secret-1" not in info.value.message
    assert primary.chat_requests() == []


# ---- an upstream that is down when the server starts ------------------------------------------


def test_an_upstream_down_at_start_says_so_and_is_served_as_soon_as_it_is_back(
    make_gateway: Callable[..., Gateway], primary: FaultyUpstream
) -> None:
    primary.refuse()
    lines_before = len(LOG_LINES)
    gateway = make_gateway(
        openai_base_url=primary.base_url,
        openai_api_key="sk-upstream-secret-2",
        models_refresh_seconds=300,
    )
    headers = {"Authorization": f"Bearer {gateway.key('alice')}"}

    def ask_demo() -> httpx.Response:
        return httpx.post(
            gateway.base_url + "/chat/completions",
            headers=headers,
            json={"model": "demo", "messages": QUESTION},
            timeout=30,
        )

    reply = ask_demo()
    assert reply.status_code == 503, reply.text
    error = reply.json()["error"]
    assert error["code"] == "upstream_models_unavailable"
    assert "'openai'" in error["message"] and "does not exist" not in error["message"]
    assert "retry-after" in reply.headers
    logged = [
        line
        for line in LOG_LINES[lines_before:]
        if "could not list the models of upstream 'openai'" in line
    ]
    assert logged and f"{primary.base_url}/models" in logged[0]
    assert "ClientConnectorError" in logged[0], "the log line says why"
    assert not any("sk-upstream-secret-2" in line for line in LOG_LINES[lines_before:])
    primary.listen()
    eventually(lambda: ask_demo().status_code == 200, "the upstream's models were listed again")
    # Once the upstream has listed its models, a name it does not serve is a plain 404.
    unknown = httpx.post(
        gateway.base_url + "/chat/completions",
        headers=headers,
        json={"model": "no-such-model", "messages": QUESTION},
        timeout=30,
    )
    assert unknown.status_code == 404


def test_an_upstream_that_never_answers_its_model_list_holds_up_neither_start_nor_the_others(
    make_gateway: Callable[..., Gateway], primary: FaultyUpstream
) -> None:
    primary.models = ["quick-model"]
    silent = socket.create_server(("127.0.0.1", 0), backlog=16)  # connects, never answers
    try:
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        gateway = make_gateway(
            providers=[
                provider("quick", primary.base_url, discover_models=True),
                provider(
                    "silent",
                    silent_url,
                    discover_models=True,
                    timeouts={**TIMEOUTS, "connect": 60, "total": 120, "first_token": 60},
                ),
            ],
            models_refresh_seconds=300,
        )
        headers = {"Authorization": f"Bearer {gateway.key('alice')}"}

        def ask(model: str) -> httpx.Response:
            return httpx.post(
                gateway.base_url + "/chat/completions",
                headers=headers,
                json={"model": model, "messages": QUESTION},
                timeout=30,
            )

        assert ask("quick-model").status_code == 200
        waiting = ask("some-model-of-silent")
        assert waiting.status_code == 503, waiting.text
        assert "'silent'" in waiting.json()["error"]["message"]
        assert "still being read" in waiting.json()["error"]["message"]
    finally:
        silent.close()


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:99999", "socks9://127.0.0.1:1080"])
def test_an_unusable_proxy_url_neither_stops_the_server_nor_gives_a_bare_500(
    make_gateway: Callable[..., Gateway], primary: FaultyUpstream, proxy: str
) -> None:
    gateway = make_gateway(
        openai_base_url=primary.base_url,
        openai_proxy=proxy,
        models=[{"name": "gpt-4o", "upstream_name": "demo"}],
    )
    reply = httpx.post(
        gateway.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {gateway.key('alice')}"},
        json={"model": "gpt-4o", "messages": QUESTION},
        timeout=30,
    )
    assert reply.status_code == 502
    error = reply.json()["error"]
    assert error["code"] == "upstream_misconfigured" and "proxy" in error["message"]


# ---- what is said, and what is tried again ----------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
async def test_an_upstream_that_hangs_up_was_reached(
    make_settings: Callable[..., Settings], primary: FaultyUpstream, stream: bool
) -> None:
    registry = ModelRegistry(chain_settings(make_settings, primary.base_url))
    primary.default = hang_up()
    try:
        error = await failure(registry, "solo", stream=stream)
        assert isinstance(error, UpstreamUnavailable)
        assert "could not reach" not in error.message
        assert "dropped the connection" in error.message
        assert len(primary.chat_requests()) == 3, "a dropped connection is tried again"
    finally:
        await registry.close()


MALFORMED_WHOLE = [
    b"not json at all",
    b"[]",
    b'{"choices": []}',
    b'{"choices": "nope"}',
    b'{"choices": [{"message": {"content": 5}}]}',
    b'{"choices": [{"message": {"content": "hi", "tool_calls": [1]}}]}',
]


@pytest.mark.parametrize("body", MALFORMED_WHOLE)
async def test_a_malformed_whole_reply_is_an_error_and_is_not_asked_again(
    make_settings: Callable[..., Settings], primary: FaultyUpstream, body: bytes
) -> None:
    registry = ModelRegistry(chain_settings(make_settings, primary.base_url))
    primary.default = whole_body(body)
    try:
        error = await failure(registry, "solo", stream=False)
        assert isinstance(error, UpstreamError) and not error.retryable
        assert error.message == "upstream 'primary' sent a malformed reply"
        assert len(primary.chat_requests()) == 1
    finally:
        await registry.close()


HOSTILE_REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "demo",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "a fine answer"},
            "finish_reason": {"not": "a string"},
        }
    ],
    "usage": {"prompt_tokens": 10**30, "completion_tokens": 5.5, "total_tokens": -1},
}
HOSTILE_STREAM_EVENT = (
    b'data: {"choices":[{"index":0,"delta":{"content":" and more"},'
    b'"finish_reason":"' + b"x" * 200 + b'"}],"usage":{"prompt_tokens":1e30}}\n\n'
)


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_untrustworthy_counts_and_reasons_are_neither_shown_nor_stored(
    make_gateway: Callable[..., Gateway], primary: FaultyUpstream, stream: bool
) -> None:
    gateway = make_gateway(
        providers=[provider("primary", primary.base_url)],
        models=[{"name": "solo", "deployments": ["primary"], "upstream_name": "demo"}],
        models_refresh_seconds=0,
    )
    if stream:
        primary.enqueue(garbage_after(3, HOSTILE_STREAM_EVENT))
    else:
        primary.enqueue(whole_body(json.dumps(HOSTILE_REPLY).encode()))
    api = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key("alice"), max_retries=0)
    if stream:
        chunks = list(
            api.chat.completions.create(
                model="solo",
                messages=QUESTION,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert all(f is None or len(f) <= 32 for f in finishes)
    else:
        reply = api.chat.completions.create(model="solo", messages=QUESTION)
        assert reply.choices[0].message.content == "a fine answer"
        assert reply.choices[0].finish_reason == "stop"
        assert reply.usage is not None and 0 < reply.usage.prompt_tokens < 2**31
    # The books are sound, and the next request is written too.
    api.chat.completions.create(model="solo", messages=QUESTION)
    first, second = gateway.request_log()
    assert first.status == "ok" and 0 < first.prompt_tokens < 2**31
    assert first.finish_reason is not None and len(first.finish_reason) <= 32
    assert second.status == "ok"


# ---- names old clients ask for ----------------------------------------------------------------


def test_old_model_names_reach_the_models_they_are_mapped_to(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(model_aliases="gpt-3.5-turbo=demo, text-davinci-003=demo,gpt-4=demo")
    api = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key("alice"), max_retries=0)
    listed = {m.id for m in api.models.list()}
    assert {"demo", "gpt-3.5-turbo", "gpt-4", "text-davinci-003"} <= listed
    for name in ("gpt-3.5-turbo", "gpt-4"):
        reply = api.chat.completions.create(model=name, messages=QUESTION)
        assert reply.choices[0].message.content
    [row, _] = gateway.request_log()
    assert row.model == "demo"


def test_old_model_names_reach_discovered_models_too(
    make_gateway: Callable[..., Gateway],
) -> None:
    upstream = FaultyUpstream(models=("llama3.1",)).start()
    try:
        gateway = make_gateway(
            openai_base_url=upstream.base_url,
            model_aliases={"gpt-4": "llama3.1"},
            models_refresh_seconds=0,
        )
        api = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key("bob"), max_retries=0)
        reply = api.chat.completions.create(model="gpt-4", messages=QUESTION)
        assert reply.choices[0].message.content
        [seen] = upstream.chat_requests()
        assert seen.body["model"] == "llama3.1"
    finally:
        upstream.stop()


def test_model_aliases_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATGATE_MODEL_ALIASES", "gpt-3.5-turbo=demo, gpt-4 = demo,")
    assert Settings().model_aliases == {"gpt-3.5-turbo": "demo", "gpt-4": "demo"}
    monkeypatch.setenv("CHATGATE_MODEL_ALIASES", "gpt-4")
    with pytest.raises(ValueError, match="old=new"):
        Settings()
