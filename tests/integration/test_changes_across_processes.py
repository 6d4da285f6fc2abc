"""Account changes reach every process at once: two ``chatgate serve`` processes sharing
PostgreSQL (its LISTEN/NOTIFY) or sharing a database and Redis (pub/sub); and a server whose
once-a-second reading is turned off still hears a change through the signal alone."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_process import REDIS, Serve, chatgate, postgres_database, redis_prefix, serve_env
from support import remember

from chatgate.core.change_signals import signals_for
from chatgate.core.changes import Change, DatabaseChangeFeed
from chatgate.providers.admin import ProviderAdmin
from chatgate.services import Services
from chatgate.settings import Settings

MEASURED: list[str] = []  # the delays seen, printed with -s


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[Callable[..., tuple[Serve, Serve, dict[str, str]]]]:
    started: list[Serve] = []

    def start(first: dict[str, str], second: dict[str, str]) -> tuple[Serve, Serve, dict[str, str]]:
        for env in (first, second):
            log = tmp_path / f"serve-{len(started)}.log"
            started.append(Serve(env, log, "--grpc-port", "0"))
        for server in started:
            server.wait_ready()
        return started[0], started[1], first

    yield start
    for server in started:
        server.stop()


def _revoked_on_one_refused_by_the_other(one: Serve, other: Serve, env: dict[str, str]) -> None:
    chatgate(env, "users", "create", "alice")
    key = remember(chatgate(env, "keys", "create", "--user", "alice").strip())
    headers = {"Authorization": f"Bearer {key}"}
    for server in (one, other):  # both have the key in their caches now
        assert httpx.get(server.url + "/v1/models", headers=headers).status_code == 200
    [listed] = httpx.get(one.url + "/api/v1/keys", headers=headers).json()

    revoked = httpx.delete(one.url + f"/api/v1/keys/{listed['id']}", headers=headers)
    assert revoked.status_code in (200, 204), revoked.text
    started = time.monotonic()
    status = 200
    while status == 200 and time.monotonic() - started < 5:
        status = httpx.get(other.url + "/v1/models", headers=headers).status_code
    assert status == 401
    MEASURED.append(f"refused by the other process after {time.monotonic() - started:.3f} s")
    print(MEASURED[-1])


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.mark.timeout(400)  # four processes start, on a busy machine too
def test_a_key_revoked_on_one_server_is_refused_by_another_on_postgresql(
    tmp_path: Path,
    postgres_url: str,
    two_servers: Callable[..., tuple[Serve, Serve, dict[str, str]]],
) -> None:
    common = {"database_url": postgres_url, "secret_key": remember(secrets.token_urlsafe(24))}
    first = serve_env(tmp_path / "one", **common)
    chatgate(first, "db", "upgrade")
    one, other, env = two_servers(first, serve_env(tmp_path / "two", **common))
    _revoked_on_one_refused_by_the_other(one, other, env)


@pytest.mark.timeout(400)  # four processes start, on a busy machine too
def test_a_key_revoked_on_one_server_is_refused_by_another_sharing_redis(
    tmp_path: Path, two_servers: Callable[..., tuple[Serve, Serve, dict[str, str]]]
) -> None:
    common = {"redis_url": REDIS, "redis_prefix": redis_prefix()}
    env = serve_env(tmp_path / "data", **common)  # one database for both, as on one machine
    one, other, _ = two_servers(env, env)
    _revoked_on_one_refused_by_the_other(one, other, env)


# ---- the signal alone ---------------------------------------------------------------------


@pytest.fixture(params=["postgresql", "redis"])
async def signalled_pair(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[Services, Services, DatabaseChangeFeed]]:
    """A server whose feed reads the database only once an hour unless signalled, and a
    command-line process that makes changes."""
    with contextlib.ExitStack() as stack:
        overrides: dict[str, Any] = {}
        if request.param == "postgresql":
            overrides["database_url"] = stack.enter_context(postgres_database())
        else:  # on SQLite, which cannot signal by itself
            overrides.update(database_url=None, redis_url=REDIS, redis_prefix=redis_prefix())
        settings = make_settings(**overrides)
        server = await Services.open(settings, migrate=True, start_models=False)
        command = await Services.open(settings, migrate=False, start_models=False)
        feed = DatabaseChangeFeed(
            server.db, server.clock.now, interval=3600, signals=signals_for(settings, server.db)
        )
        try:
            yield server, command, feed
        finally:
            await feed.close()
            await command.close()
            await server.close()


async def test_a_change_is_heard_through_the_signal_without_waiting_for_a_reading(
    signalled_pair: tuple[Services, Services, DatabaseChangeFeed],
) -> None:
    _server, command, feed = signalled_pair
    heard: list[Change | None] = []
    await command.accounts.create_user("alice")
    feed.watch(heard.append)
    await asyncio.wait_for(feed.listening.wait(), 10)
    user = await command.accounts.get_user("alice")

    await command.accounts.set_quota("alice", rpm=5)
    started = time.monotonic()
    deadline = started + 10
    while not heard and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert heard == [Change(user_id=user.id)]
    MEASURED.append(f"signal heard after {time.monotonic() - started:.3f} s")
    print(MEASURED[-1])


async def test_a_providers_announcement_reaches_the_other_process_only(
    signalled_pair: tuple[Services, Services, DatabaseChangeFeed],
) -> None:
    _server, command, feed = signalled_pair
    other = DatabaseChangeFeed(
        command.db,
        command.clock.now,
        interval=3600,
        signals=signals_for(command.settings, command.db),
    )
    here: list[str] = []
    there: list[str] = []

    async def heard_here() -> None:
        here.append("providers")

    async def heard_there() -> None:
        there.append("providers")

    feed.hear("providers", heard_here)
    other.hear("providers", heard_there)
    feed.watch(lambda change: None)
    other.watch(lambda change: None)
    try:
        await asyncio.wait_for(asyncio.gather(feed.listening.wait(), other.listening.wait()), 10)
        deadline = time.monotonic() + 10
        await feed.announce("providers")
        while not there and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert there == ["providers"]
        assert here == []  # the announcing process did its own reload
    finally:
        await other.close()


def _providers_file(path: Path, model: str) -> Path:
    path.write_text(
        f"""
[[providers]]
name = "primary"
base_url = "http://127.0.0.1:9/v1"
discover_models = false

[[models]]
name = "{model}"
deployments = ["primary"]
"""
    )
    return path


async def test_providers_reloaded_on_one_server_are_reloaded_by_the_other(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with postgres_database() as url:
        files = [_providers_file(tmp_path / f"{n}.toml", "first-model") for n in ("one", "two")]
        one = await Services.open(
            make_settings(database_url=url, config_file=files[0]), migrate=True
        )
        other = await Services.open(make_settings(database_url=url, config_file=files[1]))
        try:
            for services in (one, other):
                assert isinstance(services.changes, DatabaseChangeFeed)
                await asyncio.wait_for(services.changes.listening.wait(), 10)
            assert "first-model" in other.models.names()
            for file in files:
                _providers_file(file, "second-model")

            await ProviderAdmin(one.models, changes=one.changes).reload()
            deadline = time.monotonic() + 10
            while "second-model" not in other.models.names() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert "second-model" in other.models.names()
            assert "first-model" not in other.models.names()
        finally:
            await other.close()
            await one.close()
