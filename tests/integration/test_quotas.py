"""Quotas over real HTTP: exact under concurrency, OpenAI-shaped 429s that SDKs act on, what
counts and what does not, per-key limits, and counters that survive a restart."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import openai
import pytest
from support import Gateway, free_port

from chatgate.core.clock import FixedClock

REDIS_URL = "redis://127.0.0.1:6379/0"
CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
DURATION = re.compile(r"^(\d+h)?(\d+m)?\d+s$")


def redis_running() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL).ping())
    except redis.ConnectionError:
        return False


@pytest.fixture(params=["memory", "redis"])
def backend_settings(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "memory":
        return {}
    if not redis_running():
        pytest.skip("no Redis server at 127.0.0.1:6379")
    import secrets

    return {"redis_url": REDIS_URL, "redis_prefix": f"test-{secrets.token_hex(6)}:"}


def post(gateway: Gateway, key: str, body: dict[str, object] = CHAT) -> httpx.Response:
    return httpx.post(
        gateway.base_url + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


async def _fifty_at_once(url: str, key: str) -> list[int]:
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        gate = asyncio.Event()

        async def one() -> int:
            await gate.wait()
            response = await client.post(url, json=CHAT, headers={"Authorization": f"Bearer {key}"})
            return response.status_code

        tasks = [asyncio.create_task(one()) for _ in range(50)]
        await asyncio.sleep(0.1)
        gate.set()
        return list(await asyncio.gather(*tasks))


def test_fifty_requests_at_once_against_ten_remaining_give_ten_successes(
    make_gateway: Callable[..., Gateway], backend_settings: dict[str, str]
) -> None:
    gateway = make_gateway(default_daily_requests=15, **backend_settings)
    key = gateway.key("alice")
    assert [post(gateway, key).status_code for _ in range(5)] == [200] * 5
    codes = asyncio.run(_fifty_at_once(gateway.base_url + "/chat/completions", key))
    assert codes.count(200) == 10 and codes.count(429) == 40
    gateway.flush()
    assert sum(1 for row in gateway.request_log() if row.counted) == 15


def test_exhausted_daily_cap_is_insufficient_quota_with_ratelimit_headers(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(default_daily_requests=2, default_daily_tokens=100_000)
    key = gateway.key("alice")
    first = post(gateway, key)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    post(gateway, key)
    refused = post(gateway, key)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    headers = refused.headers
    assert headers["x-should-retry"] == "false"
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert DURATION.match(headers["x-ratelimit-reset-requests"])
    assert headers["x-ratelimit-limit-tokens"] == "100000"
    assert int(headers["x-ratelimit-remaining-tokens"]) < 100_000
    assert DURATION.match(headers["x-ratelimit-reset-tokens"])
    assert 0 < int(headers["retry-after"]) <= 86400


def test_openai_sdk_gets_rate_limit_error_and_does_not_retry_a_used_up_day(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(default_daily_requests=1)
    seen: list[str] = []
    http = httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]})
    api = openai.OpenAI(
        base_url=gateway.base_url, api_key=gateway.key("alice"), max_retries=2, http_client=http
    )
    api.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError) as info:
        api.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
    http.close()
    assert info.value.code == "insufficient_quota"
    assert info.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert info.value.response.headers["x-should-retry"] == "false"
    assert seen == ["/v1/chat/completions"] * 2  # one answered, one refused, no retries


def test_per_minute_limit_is_retryable_rate_limit_exceeded(
    make_gateway: Callable[..., Gateway],
) -> None:
    clock = FixedClock(time.time())
    gateway = make_gateway(clock=clock, default_rpm=2)
    api = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key("alice"), max_retries=0)
    for _ in range(2):
        api.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError) as info:
        api.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}])
    headers = info.value.response.headers
    assert info.value.code == "rate_limit_exceeded"
    assert headers["x-should-retry"] == "true"
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-reset-requests"] == "1m0s"
    assert headers["retry-after"] == "60"
    clock.advance(61)
    assert api.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "x"}]
    ).choices


def test_concurrent_streams_are_limited(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(default_max_streams=1, demo_chunk_delay=0.05)
    key = gateway.key("alice")
    headers = {"Authorization": f"Bearer {key}"}
    body = {**CHAT, "stream": True}
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST", gateway.base_url + "/chat/completions", json=body, headers=headers
        ) as first,
    ):
        assert first.status_code == 200
        lines = first.iter_lines()  # kept: a dropped iterator closes the stream
        next(lines)
        second = post(gateway, key)
        assert second.status_code == 429
        assert second.json()["error"]["code"] == "rate_limit_exceeded"
    assert post(gateway, key).status_code == 200


def test_token_budget_is_counted_from_usage(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(default_daily_tokens=30)
    key = gateway.key("alice")
    first = post(gateway, key)
    used = first.json()["usage"]["total_tokens"]
    assert used > 30
    refused = post(gateway, key)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "insufficient_quota"
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"


def test_a_request_that_fails_upstream_is_not_counted(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(
        default_daily_requests=1,
        demo_model=True,
        openai_base_url=f"http://127.0.0.1:{free_port()}/v1",
        openai_api_key="k",
        models=[{"name": "gpt-x", "deployments": ["openai"]}],
    )
    key = gateway.key("alice")
    failing = {"model": "gpt-x", "messages": [{"role": "user", "content": "x"}]}
    codes = [post(gateway, key, failing).status_code for _ in range(3)]
    assert codes[0] == 502 and all(code in (502, 503) for code in codes)  # then the breaker
    assert post(gateway, key).status_code == 200
    assert post(gateway, key).status_code == 429


def test_a_reply_cut_by_the_client_is_counted_with_what_was_produced(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(default_daily_requests=1, demo_chunk_delay=0.05)
    key = gateway.key("alice")
    body = {**CHAT, "stream": True}
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            gateway.base_url + "/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        ) as response,
    ):
        lines = response.iter_lines()
        for _ in range(6):
            next(lines)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        gateway.flush()
        rows = gateway.request_log()
        if rows:
            break
        time.sleep(0.05)
    [row] = rows
    assert (row.status, row.counted) == ("cancelled", True)
    assert 0 < row.completion_tokens < 40
    assert post(gateway, key).status_code == 429


def test_a_key_limit_binds_that_key_on_top_of_its_owner(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(default_daily_requests=5)
    limited, other = gateway.key("alice"), gateway.key("alice")
    [info, _] = gateway.run(gateway.services.accounts.list_keys())
    gateway.run(gateway.services.accounts.set_key_quota(info.id, daily_requests=2))
    assert [post(gateway, limited).status_code for _ in range(3)] == [200, 200, 429]
    assert [post(gateway, other).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_quota_changes_apply_at_once(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(default_daily_requests=1)
    key = gateway.key("alice")
    assert post(gateway, key).status_code == 200
    assert post(gateway, key).status_code == 429
    gateway.run(gateway.services.accounts.set_quota("alice", daily_requests=3))
    assert [post(gateway, key).status_code for _ in range(3)] == [200, 200, 429]


def test_counters_survive_a_restart(
    make_gateway: Callable[..., Gateway], backend_settings: dict[str, str]
) -> None:
    first = make_gateway(default_daily_requests=5)
    key = first.key("alice")
    assert [post(first, key).status_code for _ in range(3)] == [200] * 3
    first.stop()
    second = make_gateway(default_daily_requests=5, **backend_settings)
    assert [post(second, key).status_code for _ in range(3)] == [200, 200, 429]


def test_streamed_answers_carry_the_ratelimit_headers_too(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(default_daily_requests=5, default_daily_tokens=1000)
    key = gateway.key("alice")
    with httpx.stream(
        "POST",
        gateway.base_url + "/chat/completions",
        json={**CHAT, "stream": True},
        headers={"Authorization": f"Bearer {key}"},
    ) as response:
        body = b"".join(response.iter_bytes())
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-ratelimit-limit-requests"] == "5"
    assert response.headers["x-ratelimit-remaining-requests"] == "4"
    assert response.headers["x-ratelimit-limit-tokens"] == "1000"
    assert body.endswith(b"data: [DONE]\n\n")


def _key_id(gateway: Gateway) -> int:
    return gateway.run(gateway.services.accounts.list_keys())[-1].id


@pytest.mark.parametrize(
    ("user", "key", "expected"),
    [
        # limits: the user's own, the key's own; expected: (header kind, limit, remaining)
        ({"daily_requests": 1000}, {"daily_requests": 2}, ("requests", "2", ["1", "0"])),
        ({"daily_requests": 2}, {"daily_requests": 1000}, ("requests", "2", ["1", "0"])),
        ({"daily_requests": 1000}, {"rpm": 2}, ("requests", "2", ["1", "0"])),
        ({"rpm": 1000}, {"daily_requests": 2}, ("requests", "2", ["1", "0"])),
        ({"daily_tokens": 100_000}, {"daily_tokens": 120}, ("tokens", "120", [])),
    ],
)
def test_ratelimit_headers_describe_the_limit_that_binds_the_key_or_its_owner(
    make_gateway: Callable[..., Gateway],
    backend_settings: dict[str, str],
    user: dict[str, int],
    key: dict[str, int],
    expected: tuple[str, str, list[str]],
) -> None:
    gateway = make_gateway(**backend_settings)
    plain = gateway.key("alice")
    gateway.run(gateway.services.accounts.set_quota("alice", **user))
    gateway.run(gateway.services.accounts.set_key_quota(_key_id(gateway), **key))
    api = openai.OpenAI(base_url=gateway.base_url, api_key=plain, max_retries=0)
    kind, limit, remaining = expected
    message = [{"role": "user", "content": "hi"}]
    for left in remaining:
        raw = api.chat.completions.with_raw_response.create(model="demo", messages=message)
        assert raw.headers[f"x-ratelimit-limit-{kind}"] == limit
        assert raw.headers[f"x-ratelimit-remaining-{kind}"] == left
    if kind == "tokens":  # a request's own tokens show in the next one's headers
        first = api.chat.completions.with_raw_response.create(model="demo", messages=message)
        used = first.parse().usage.total_tokens  # type: ignore[union-attr]
        raw = api.chat.completions.with_raw_response.create(model="demo", messages=message)
        assert raw.headers["x-ratelimit-limit-tokens"] == limit
        assert int(raw.headers["x-ratelimit-remaining-tokens"]) == int(limit) - used
    else:
        with pytest.raises(openai.RateLimitError) as info:
            api.chat.completions.create(model="demo", messages=message)
        assert info.value.response.headers[f"x-ratelimit-limit-{kind}"] == limit
        assert info.value.response.headers[f"x-ratelimit-remaining-{kind}"] == "0"


PARIS = "Europe/Paris"
RENEWS = "the quota renews at midnight (Europe/Paris), in 3h12m."


@pytest.mark.parametrize(
    ("scope", "limit", "says"),
    [
        ("user", "daily_requests", "You have used all 1 of today's requests; " + RENEWS),
        ("key", "daily_requests", "This API key has used all 1 of today's requests; " + RENEWS),
        ("user", "daily_tokens", "You have used all 1 of today's tokens; " + RENEWS),
        ("user", "rpm", "Rate limit reached: 1 requests per minute; try again in 1m00s."),
        ("key", "rpm", "Rate limit reached: 1 requests per minute for this API key; try again"),
    ],
)
@pytest.mark.parametrize("role", ["user", "admin"])
def test_a_refusal_names_the_limit_when_it_frees_up_and_to_an_admin_how_to_raise_it(
    make_gateway: Callable[..., Gateway], role: str, scope: str, limit: str, says: str
) -> None:
    evening = datetime(2026, 6, 1, 20, 47, 30, tzinfo=ZoneInfo(PARIS)).timestamp()
    gateway = make_gateway(clock=FixedClock(evening, PARIS), timezone=PARIS)
    gateway.user("rose", admin=role == "admin")
    key = gateway.key("rose")
    if scope == "user":
        gateway.run(gateway.services.accounts.set_quota("rose", **{limit: 1}))
    else:
        gateway.run(gateway.services.accounts.set_key_quota(_key_id(gateway), **{limit: 1}))
    assert post(gateway, key).status_code == 200
    refused = post(gateway, key)
    assert refused.status_code == 429
    message = refused.json()["error"]["message"]
    assert message.startswith(says)
    option = "--" + limit.replace("_", "-")
    command = (
        f"chatgate users set-quota rose {option} N"
        if scope == "user"
        else f"chatgate keys set-quota {_key_id(gateway)} {option} N"
    )
    assert message.endswith(f" To raise it: {command}") == (role == "admin")
    assert ("set-quota" in message) == (role == "admin")


def test_administrators_have_no_limits_unless_theirs_are_set(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(default_daily_requests=1, default_rpm=1, default_max_streams=1)
    gateway.user("root", admin=True)
    key = gateway.key("root")
    answers = [post(gateway, key) for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 3
    assert "x-ratelimit-limit-requests" not in answers[-1].headers
    gateway.run(gateway.services.accounts.set_quota("root", daily_requests=4))
    assert [post(gateway, key).status_code for _ in range(2)] == [200, 429]
    user_key = gateway.key("alice")  # the defaults still bind everyone else
    assert [post(gateway, user_key).status_code for _ in range(2)] == [200, 429]
