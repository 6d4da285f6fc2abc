"""One contract, every store of quota counters: in process and Redis (skipped, with the reason,
when no Redis server is running at 127.0.0.1:6379)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from chatgate.core.accounts import Limits
from chatgate.core.quota_backends import MemoryQuotaBackend, QuotaBackend, Scope

if TYPE_CHECKING:
    from chatgate.core.quota_redis import RedisQuotaBackend

REDIS_URL = "redis://127.0.0.1:6379/0"
DAY = "2026-03-01"
NOW = 1_772_000_000.0


async def _redis_running() -> bool:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    try:
        return bool(await client.ping())
    except OSError:
        return False
    finally:
        await client.aclose()


async def _fresh_redis_backend() -> RedisQuotaBackend:
    """A Redis backend under a prefix of its own (the test is skipped without a Redis)."""
    if not await _redis_running():
        pytest.skip(f"no Redis server is answering at {REDIS_URL}")
    from chatgate.core.quota_redis import RedisQuotaBackend

    return RedisQuotaBackend(REDIS_URL, prefix=f"test-{secrets.token_hex(6)}:")


async def _remove(backend: RedisQuotaBackend) -> None:
    """Delete the backend's keys, then close it."""
    keys = [k async for k in backend.redis.scan_iter(match=backend.prefix + "*")]
    if keys:
        await backend.redis.delete(*keys)
    await backend.close()


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[QuotaBackend]:
    if request.param == "memory":
        yield MemoryQuotaBackend()
        return
    redis_backend = await _fresh_redis_backend()
    yield redis_backend
    await _remove(redis_backend)


def user(limits: Limits, ident: int = 1) -> Scope:
    return Scope(f"u:{ident}", limits)


async def test_daily_requests_stop_at_the_limit(backend: QuotaBackend) -> None:
    scope = user(Limits(daily_requests=3))
    verdicts = [await backend.take([scope], DAY, NOW) for _ in range(4)]
    assert [v.ok for v in verdicts] == [True, True, True, False]
    assert verdicts[2].counts[0].requests == 3
    assert verdicts[3].failed == "daily_requests"


async def test_fifty_at_once_against_ten_give_exactly_ten(backend: QuotaBackend) -> None:
    scope = user(Limits(daily_requests=10))
    verdicts = await asyncio.gather(*(backend.take([scope], DAY, NOW) for _ in range(50)))
    assert sum(v.ok for v in verdicts) == 10


async def test_a_request_that_does_not_count_is_given_back(backend: QuotaBackend) -> None:
    scope = user(Limits(daily_requests=1))
    assert (await backend.take([scope], DAY, NOW)).ok
    backend.release([scope.key], DAY, counted=False, tokens=0, now=NOW)
    await backend.drain()
    assert (await backend.take([scope], DAY, NOW)).ok
    backend.release([scope.key], DAY, counted=True, tokens=0, now=NOW)
    await backend.drain()
    assert not (await backend.take([scope], DAY, NOW)).ok


async def test_tokens_are_added_when_settled(backend: QuotaBackend) -> None:
    scope = user(Limits(daily_tokens=100))
    assert (await backend.take([scope], DAY, NOW)).ok
    backend.release([scope.key], DAY, counted=True, tokens=120, now=NOW)
    await backend.drain()
    refused = await backend.take([scope], DAY, NOW)
    assert refused.failed == "daily_tokens" and refused.counts[0].tokens == 120


async def test_days_are_counted_apart(backend: QuotaBackend) -> None:
    scope = user(Limits(daily_requests=1))
    assert (await backend.take([scope], DAY, NOW)).ok
    assert not (await backend.take([scope], DAY, NOW)).ok
    assert (await backend.take([scope], "2026-03-02", NOW + 86400)).ok


async def test_requests_per_minute_is_a_sliding_window(backend: QuotaBackend) -> None:
    scope = user(Limits(rpm=2))
    assert (await backend.take([scope], DAY, NOW)).ok
    assert (await backend.take([scope], DAY, NOW + 30)).ok
    refused = await backend.take([scope], DAY, NOW + 59)
    assert refused.failed == "rpm" and refused.counts[0].oldest_in_minute == NOW
    assert (await backend.take([scope], DAY, NOW + 60.5)).ok
    assert not (await backend.take([scope], DAY, NOW + 61)).ok


async def test_streams_are_given_back_when_they_end(backend: QuotaBackend) -> None:
    scope = user(Limits(max_streams=2))
    assert (await backend.take([scope], DAY, NOW)).ok
    assert (await backend.take([scope], DAY, NOW)).ok
    assert (await backend.take([scope], DAY, NOW)).failed == "max_streams"
    backend.release([scope.key], DAY, counted=True, tokens=0, now=NOW)
    await backend.drain()
    assert (await backend.take([scope], DAY, NOW)).ok


async def test_every_scope_must_pass_and_a_refusal_takes_nothing(backend: QuotaBackend) -> None:
    owner = user(Limits(daily_requests=5))
    key = Scope("k:7", Limits(daily_requests=1))
    assert (await backend.take([owner, key], DAY, NOW)).ok
    refused = await backend.take([owner, key], DAY, NOW)
    assert (refused.ok, refused.failed, refused.index) == (False, "daily_requests", 1)
    assert refused.counts[0].requests == 1
    verdict = await backend.take([owner], DAY, NOW)
    assert verdict.ok and verdict.counts[0].requests == 2


async def test_seed_starts_the_day_from_the_books_only_once(backend: QuotaBackend) -> None:
    scope = user(Limits(daily_requests=10, daily_tokens=1000))
    await backend.seed(scope.key, DAY, 9, 400)
    await backend.seed(scope.key, DAY, 0, 0)  # a second seed changes nothing
    verdict = await backend.take([scope], DAY, NOW)
    assert verdict.ok and (verdict.counts[0].requests, verdict.counts[0].tokens) == (10, 400)
    assert not (await backend.take([scope], DAY, NOW)).ok


async def test_many_releases_at_once_are_all_counted(backend: QuotaBackend) -> None:
    scope = user(Limits(max_streams=40, daily_tokens=10_000))
    for _ in range(40):
        assert (await backend.take([scope], DAY, NOW)).ok
    for n in range(40):
        backend.release([scope.key], DAY, counted=n % 2 == 0, tokens=5, now=NOW)
    await backend.drain()
    after = await backend.take([scope], DAY, NOW)
    assert after.ok
    seen = after.counts[0]
    assert (seen.requests, seen.tokens, seen.streams) == (21, 200, 1)


async def test_releases_go_through_after_redis_forgets_its_scripts() -> None:
    backend = await _fresh_redis_backend()
    scope = user(Limits(max_streams=1))
    try:
        assert (await backend.take([scope], DAY, NOW)).ok
        await backend.redis.script_flush()
        backend.release([scope.key], DAY, counted=True, tokens=0, now=NOW)
        await backend.drain()
        assert (await backend.take([scope], DAY, NOW)).ok
    finally:
        await _remove(backend)


async def test_takes_go_through_after_redis_forgets_its_scripts() -> None:
    backend = await _fresh_redis_backend()
    scope = user(Limits(daily_requests=5))
    try:
        assert (await backend.take([scope], DAY, NOW)).ok
        await backend.redis.script_flush()
        verdicts = await asyncio.gather(*(backend.take([scope], DAY, NOW) for _ in range(6)))
        assert sorted(v.ok for v in verdicts) == [False, False, True, True, True, True]
    finally:
        await _remove(backend)


async def test_a_take_whose_caller_left_before_the_answer_is_given_back() -> None:
    backend = await _fresh_redis_backend()
    scope = user(Limits(daily_requests=10, max_streams=1))
    try:
        gone = asyncio.create_task(backend.take([scope], DAY, NOW))
        await asyncio.sleep(0)  # asked, not yet answered
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        await backend.drain()
        after = await backend.take([scope], DAY, NOW)
        assert after.ok
        assert (after.counts[0].requests, after.counts[0].streams) == (1, 1)
    finally:
        await _remove(backend)


async def test_peek_shows_the_counters_and_takes_nothing(backend: QuotaBackend) -> None:
    scope = user(Limits(daily_requests=3, rpm=5, max_streams=2))
    other = user(Limits(), ident=2)
    assert [c.requests for c in await backend.peek([scope, other], DAY, NOW)] == [0, 0]
    assert (await backend.take([scope], DAY, NOW)).ok
    assert (await backend.take([scope], DAY, NOW + 30)).ok
    backend.release([scope.key], DAY, counted=True, tokens=40, now=NOW + 31)
    await backend.drain()
    seen, untouched = await backend.peek([scope, other], DAY, NOW + 45)
    assert (seen.requests, seen.tokens, seen.minute, seen.streams) == (2, 40, 2, 1)
    assert (untouched.requests, untouched.tokens) == (0, 0)
    later = (await backend.peek([scope], DAY, NOW + 75))[0]
    assert (later.requests, later.minute) == (2, 1)  # the first one left the minute's window
    assert (await backend.peek([scope], DAY, NOW + 75))[0].requests == 2  # peeking took nothing
    assert (await backend.peek([scope], "2026-03-02", NOW + 86400))[0].requests == 0
