"""The API-key cache, against a real SQLite database: a burst of requests with a key not yet
cached costs one look-up, a busy key is looked up again before its entry runs out, and a key
revoked elsewhere is refused once that look-up has seen it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, update

from chatgate.core.accounts import KEY_PREFIX
from chatgate.core.clock import FixedClock
from chatgate.core.errors import AuthenticationFailed
from chatgate.services import Services
from chatgate.settings import Settings
from chatgate.store.tables import ApiKey

CACHE_SECONDS = 30.0


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    settings = Settings.load(
        data_dir=tmp_path, key_cache_seconds=CACHE_SECONDS, usage_flush_seconds=0.05
    )
    clock = FixedClock(time.time(), "UTC")
    opened = await Services.open(settings, clock=clock, start_models=False)
    yield opened
    await opened.close()


def key_lookups(services: Services) -> list[str]:
    """Every statement that reads the api_keys table, as the database is sent it."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "api_keys" in statement:
            seen.append(statement)

    event.listen(services.db.engine.sync_engine, "before_cursor_execute", before)
    return seen


async def new_key(services: Services, user: str) -> str:
    await services.accounts.create_user(user)
    key, _ = await services.accounts.create_key(user, label="test")
    return key


async def test_fifty_requests_at_once_with_a_new_key_cost_one_lookup(services: Services) -> None:
    key = await new_key(services, "alice")
    lookups = key_lookups(services)
    principals = await asyncio.gather(*(services.accounts.authenticate(key) for _ in range(50)))
    assert {p.username for p in principals} == {"alice"}
    assert len(lookups) == 1
    await services.accounts.authenticate(key)
    assert len(lookups) == 1


async def test_a_busy_key_is_looked_up_again_before_its_entry_expires(
    services: Services,
) -> None:
    key = await new_key(services, "bob")
    clock = services.clock
    assert isinstance(clock, FixedClock)
    lookups = key_lookups(services)
    await services.accounts.authenticate(key)
    clock.advance(CACHE_SECONDS * 0.9)
    # Served from the cache at once; the look-up goes on behind it.
    assert (await services.accounts.authenticate(key)).username == "bob"
    await asyncio.sleep(0.2)
    assert len(lookups) == 2
    clock.advance(CACHE_SECONDS * 0.5)  # past the first entry's end, within the new one's
    await services.accounts.authenticate(key)
    assert len(lookups) == 2


async def test_a_key_revoked_by_another_instance_is_refused_after_the_refresh(
    services: Services,
) -> None:
    key = await new_key(services, "carol")
    clock = services.clock
    assert isinstance(clock, FixedClock)
    await services.accounts.authenticate(key)
    async with services.db.session() as session, session.begin():
        await session.execute(update(ApiKey).values(revoked_at=clock.now()))
    clock.advance(CACHE_SECONDS * 0.9)
    await services.accounts.authenticate(key)  # still cached; the refresh sees the revocation
    await asyncio.sleep(0.2)
    with pytest.raises(AuthenticationFailed):
        await services.accounts.authenticate(key)


async def test_an_unknown_key_is_refused_to_every_caller_of_a_burst(services: Services) -> None:
    await new_key(services, "dave")
    lookups = key_lookups(services)
    results = await asyncio.gather(
        *(services.accounts.authenticate(KEY_PREFIX + "0" * 40) for _ in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(r, AuthenticationFailed) for r in results)
    assert len(lookups) == 1


async def test_a_key_stops_working_at_its_expiry_not_when_its_cache_entry_ends(
    services: Services,
) -> None:
    await services.accounts.create_user("erin")
    key, _ = await services.accounts.create_key("erin", expires_days=10 / 86400)  # 10 s
    clock = services.clock
    assert isinstance(clock, FixedClock)
    assert (await services.accounts.authenticate(key)).username == "erin"
    clock.advance(9)
    assert (await services.accounts.authenticate(key)).username == "erin"
    clock.advance(1.5)
    with pytest.raises(AuthenticationFailed):
        await services.accounts.authenticate(key)
