"""Account changes reach every process at once: two ``chatgate serve`` processes sharing
PostgreSQL (its LISTEN/NOTIFY) or sharing a database and Redis (pub/sub); and a server whose
once-a-second reading is turned off still hears a change through the signal alone."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from support import free_port, remember

from chatgate.core.change_signals import signals_for
from chatgate.core.changes import Change, DatabaseChangeFeed
from chatgate.providers.admin import ProviderAdmin
from chatgate.services import Services
from chatgate.settings import Settings

ROOT = Path(__file__).parents[2]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/0"
MEASURED: list[str] = []  # the delays seen, printed with -s


@contextlib.contextmanager
def _postgres_database() -> Iterator[str]:
    """A fresh database on the local PostgreSQL server, dropped afterwards."""

    async def run(statement: str) -> bool:
        try:
            conn = await asyncpg.connect(PG_ADMIN, timeout=3)
        except (OSError, asyncpg.PostgresError):
            return False
        try:
            await conn.execute(statement)
        finally:
            await conn.close()
        return True

    def blocking(statement: str) -> bool:  # from a test's event loop too
        with concurrent.futures.ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, run(statement)).result()

    name = "chatgate_signals_" + secrets.token_hex(6)
    if not blocking(f'CREATE DATABASE "{name}"'):
        pytest.skip("no PostgreSQL server is accepting connections at 127.0.0.1:5432")
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        blocking(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _redis_prefix() -> str:
    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=3).ping()
    except redis.RedisError:
        pytest.skip("no Redis server is accepting connections at 127.0.0.1:6379")
    return f"chatgate-test-{secrets.token_hex(6)}:"


def _env(data: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATGATE_", "OPENAI_"))}
    env.update(CHATGATE_DATA_DIR=str(data), PYTHONPATH=str(ROOT), COLUMNS="200")
    env.update({f"CHATGATE_{name.upper()}": value for name, value in settings.items()})
    return env


def _chatgate(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "chatgate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class Serve:
    """``chatgate serve`` in a process of its own."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chatgate", "serve", "--port", str(port), "--grpc-port", "0"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "chatgate serve ended before it was ready"
            try:
                if httpx.get(self.url + "/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("chatgate serve did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[Callable[..., tuple[Serve, Serve, dict[str, str]]]]:
    started: list[Serve] = []

    def start(first: dict[str, str], second: dict[str, str]) -> tuple[Serve, Serve, dict[str, str]]:
        for env in (first, second):
            started.append(Serve(env, tmp_path / f"serve-{len(started)}.log"))
        for server in started:
            server.wait_ready()
        return started[0], started[1], first

    yield start
    for server in started:
        server.stop()


def _revoked_on_one_refused_by_the_other(one: Serve, other: Serve, env: dict[str, str]) -> None:
    _chatgate(env, "users", "create", "alice")
    key = remember(_chatgate(env, "keys", "create", "--user", "alice").strip())
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
    with _postgres_database() as url:
        yield url


@pytest.mark.timeout(400)  # four processes start, on a busy machine too
def test_a_key_revoked_on_one_server_is_refused_by_another_on_postgresql(
    tmp_path: Path,
    postgres_url: str,
    two_servers: Callable[..., tuple[Serve, Serve, dict[str, str]]],
) -> None:
    common = {"database_url": postgres_url, "secret_key": remember(secrets.token_urlsafe(24))}
    first = _env(tmp_path / "one", **common)
    _chatgate(first, "db", "upgrade")
    one, other, env = two_servers(first, _env(tmp_path / "two", **common))
    _revoked_on_one_refused_by_the_other(one, other, env)


@pytest.mark.timeout(400)  # four processes start, on a busy machine too
def test_a_key_revoked_on_one_server_is_refused_by_another_sharing_redis(
    tmp_path: Path, two_servers: Callable[..., tuple[Serve, Serve, dict[str, str]]]
) -> None:
    common = {"redis_url": REDIS, "redis_prefix": _redis_prefix()}
    env = _env(tmp_path / "data", **common)  # one database for both, as on one machine
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
            overrides["database_url"] = stack.enter_context(_postgres_database())
        else:  # on SQLite, which cannot signal by itself
            overrides.update(database_url=None, redis_url=REDIS, redis_prefix=_redis_prefix())
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
    with _postgres_database() as url:
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
