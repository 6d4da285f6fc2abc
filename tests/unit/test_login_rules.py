"""Logins in the core, against a real database: one answer and the same work for every kind of
failure, and parallel guesses that cannot slip past the limit, whether failures are counted in
process or in Redis (as several processes count them)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import pytest
import redis
from argon2 import PasswordHasher
from support import remember

from chatgate.core.clock import FixedClock
from chatgate.core.errors import AccountDisabled, InvalidCredentials, TooManyLoginAttempts
from chatgate.core.logins import FailedLoginLimiter, RedisLoginLimiter
from chatgate.services import Services
from chatgate.settings import Settings

PASSWORD = remember("cobalt-Meadow-1193")
REDIS = "redis://127.0.0.1:6379/0"


def _counted_in(where: str) -> dict[str, Any]:
    """The settings that count failed logins ``where``: in process, or in Redis."""
    if where == "memory":
        return {}
    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=3).ping()
    except redis.RedisError:
        pytest.skip("no Redis server is accepting connections at 127.0.0.1:6379")
    return {"redis_url": REDIS, "redis_prefix": f"chatgate-test-{secrets.token_hex(6)}:"}


@pytest.fixture(params=["memory", "redis"])
def counted_in(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _counted_in(request.param)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(float(int(time.time())))  # whole seconds: exact sums


@pytest.fixture
async def services(
    tmp_path: Path, counted_in: dict[str, Any], clock: FixedClock
) -> AsyncIterator[Services]:
    settings = Settings.load(
        data_dir=tmp_path, login_max_failures=3, usage_flush_seconds=0.05, **counted_in
    )
    opened = await Services.open(settings, clock=clock, start_models=False)
    expected = RedisLoginLimiter if counted_in else FailedLoginLimiter
    assert type(opened.logins.limiter) is expected
    yield opened
    await opened.close()


def count_hashing(services: Services, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Note every argon2 verification the login does (the real one still runs)."""
    calls: list[str] = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            calls.append(str(hash)[:9])
            return super().verify(hash, password)

    monkeypatch.setattr(services.accounts.passwords, "_hasher", CountingHasher())
    return calls


FAILURES = {
    "unknown user": ("mallory", PASSWORD),
    "wrong password": ("alice", PASSWORD + "?"),
    "no password set": ("keys-only", PASSWORD),
    "disabled, wrong password": ("dora", PASSWORD + "?"),
}


@pytest.mark.parametrize("case", FAILURES)
async def test_every_failed_login_does_one_full_hash_check_and_says_the_same(
    services: Services, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    await services.accounts.create_user("alice", PASSWORD)
    await services.accounts.create_user("keys-only")
    await services.accounts.create_user("dora", PASSWORD)
    await services.accounts.update_user("dora", disabled=True)
    name, password = FAILURES[case]
    calls = count_hashing(services, monkeypatch)
    with pytest.raises(InvalidCredentials) as info:
        await services.logins.login(name, password, "10.0.0.1")
    assert info.value.message == "Invalid username or password"
    assert calls == ["$argon2id"]


async def test_a_disabled_account_is_told_so_only_after_its_full_password_check(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await services.accounts.create_user("dora", PASSWORD)
    await services.accounts.update_user("dora", disabled=True)
    calls = count_hashing(services, monkeypatch)
    with pytest.raises(AccountDisabled):
        await services.logins.login("dora", PASSWORD, "10.0.0.1")
    assert calls == ["$argon2id"], "the same work as any other failed login"


async def test_parallel_guesses_cannot_exceed_the_limit(services: Services) -> None:
    await services.accounts.create_user("alice", PASSWORD)
    results = await asyncio.gather(
        *(services.logins.login("alice", f"guess-{i}", f"10.0.0.{i}") for i in range(10)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, InvalidCredentials) for r in results) == 3
    assert sum(isinstance(r, TooManyLoginAttempts) for r in results) == 7


async def test_a_good_login_clears_the_name_but_not_the_address(services: Services) -> None:
    await services.accounts.create_user("alice", PASSWORD)
    await services.accounts.create_user("bob", PASSWORD)
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            await services.logins.login("alice", "nope-nope", "10.0.0.9")
    assert (await services.logins.login("alice", PASSWORD, "10.0.0.8")).user.name == "alice"
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            await services.logins.login("alice", "nope-nope", "10.0.0.7")
    with pytest.raises(InvalidCredentials):
        await services.logins.login("bob", "nope-nope", "10.0.0.9")  # the address's third
    with pytest.raises(TooManyLoginAttempts):
        await services.logins.login("bob", PASSWORD, "10.0.0.9")


async def test_the_limit_lifts_once_the_window_has_passed(
    services: Services, clock: FixedClock
) -> None:
    await services.accounts.create_user("alice", PASSWORD)
    for _ in range(3):  # at 0, 100 and 200 s
        with pytest.raises(InvalidCredentials):
            await services.logins.login("alice", "nope-nope", "10.0.0.1")
        clock.advance(100)
    clock.advance(-50)
    with pytest.raises(TooManyLoginAttempts) as refused:
        await services.logins.login("alice", PASSWORD, "10.0.0.2")
    assert refused.value.retry_after == 50  # the first failure leaves the window (300 s)
    clock.advance(50)
    assert (await services.logins.login("alice", PASSWORD, "10.0.0.2")).user.name == "alice"
