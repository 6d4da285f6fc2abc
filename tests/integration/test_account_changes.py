"""Account changes travel between processes through the database, on SQLite and PostgreSQL:
a server follows what another process changes, hears every change once and in order even when
many are made at once, and drops everything when it finds some missed."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from sqlalchemy import delete, update

from chatgate.core.changes import Change, DatabaseChangeFeed
from chatgate.core.errors import AuthenticationFailed
from chatgate.services import Services
from chatgate.settings import Settings
from chatgate.store.tables import AccountChange, ApiKey

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _postgres_database() -> str | None:
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return None
    name = "chatgate_test_" + secrets.token_hex(6)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN, timeout=3)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def two_processes(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[Services, Services]]:
    """A server that follows changes, and a command-line process that makes them, sharing
    one database."""
    overrides: dict[str, Any] = {}
    name = None
    if request.param == "postgresql":
        name = await _postgres_database()
        if name is None:
            pytest.skip("no PostgreSQL server is accepting connections at 127.0.0.1:5432")
        overrides["database_url"] = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    settings = make_settings(**overrides)
    server = await Services.open(settings, migrate=True, start_models=False, watch_changes=True)
    command = await Services.open(settings, migrate=False, start_models=False)
    try:
        yield server, command
    finally:
        await command.close()
        await server.close()
        if name is not None:
            await _drop(name)


async def _soon(check: Callable[[], Any], within: float = 1.5) -> bool:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_a_key_revoked_by_another_process_is_refused_within_a_second(
    two_processes: tuple[Services, Services],
) -> None:
    server, command = two_processes
    await command.accounts.create_user("alice")
    key, info = await command.accounts.create_key("alice")
    assert (await server.accounts.authenticate(key)).username == "alice"  # cached now
    await command.accounts.revoke_key(info.id)

    async def refused() -> bool:
        try:
            await server.accounts.authenticate(key)
        except AuthenticationFailed:
            return True
        return False

    assert await _soon(refused)


async def test_changes_made_at_once_are_each_heard_once_in_order(
    two_processes: tuple[Services, Services],
) -> None:
    server, command = two_processes
    feed = DatabaseChangeFeed(server.db, server.clock.now)
    heard: list[Change | None] = []
    names = [f"user{i}" for i in range(12)]
    for name in names:
        await command.accounts.create_user(name)
    ids = [(await command.accounts.get_user(n)).id for n in names]
    await feed.read(heard.append)  # where the changes stand
    await asyncio.gather(*(command.accounts.set_quota(n, rpm=5) for n in names))
    await command.accounts.revoke_key((await command.accounts.create_key("user0"))[1].id)
    await feed.read(heard.append)
    assert None not in heard and len(heard) == len(names) + 1
    assert {c.user_id for c in heard[:-1] if c is not None} == set(ids)
    assert heard[-1] == Change(key_id=1)


async def test_a_server_that_missed_changes_forgets_everything(
    two_processes: tuple[Services, Services],
) -> None:
    server, command = two_processes
    feed = DatabaseChangeFeed(server.db, server.clock.now)
    heard: list[Change | None] = []
    await feed.read(heard.append)
    await command.accounts.create_user("bob")
    await command.accounts.set_quota("bob", rpm=1)
    await command.accounts.set_quota("bob", rpm=2)
    async with command.db.session() as session, session.begin():
        await session.execute(delete(AccountChange))  # pruned before they were read
    await command.accounts.set_quota("bob", rpm=3)
    await feed.read(heard.append)
    assert heard == [None]
    # Forgetting everything: a key cached before is looked up again, and found revoked.
    key, info = await command.accounts.create_key("bob")
    await server.accounts.authenticate(key)
    async with command.db.session() as session, session.begin():
        await session.execute(
            update(ApiKey).where(ApiKey.id == info.id).values(revoked_at=time.time())
        )
    server.accounts.heard(None)
    with pytest.raises(AuthenticationFailed):
        await server.accounts.authenticate(key)
