"""The same conversation-store contract on SQLite and on PostgreSQL: what the hook stores,
full-text search with each database's own index, paging and deletion."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from chatgate.core.accounts import Principal
from chatgate.core.events import ChatRequest, Done
from chatgate.services import Services
from chatgate.settings import Settings

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _postgres_database() -> str | None:
    """A fresh database on the local PostgreSQL server, or None when none is running."""
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
async def services(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> AsyncIterator[Services]:
    overrides: dict[str, Any] = {"conversation_titles": False}
    name = None
    if request.param == "postgresql":
        name = await _postgres_database()
        if name is None:
            pytest.skip("no PostgreSQL server is accepting connections at 127.0.0.1:5432")
        overrides["database_url"] = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    opened = await Services.open(make_settings(**overrides), migrate=True)
    try:
        yield opened
    finally:
        await opened.close()
        if name is not None:
            await _drop(name)


async def principal(services: Services, name: str) -> Principal:
    user = await services.accounts.ensure_user(name)
    return services.accounts.principal_for(user)


async def chat(services: Services, who: Principal, text: str, cid: str = "new") -> Done:
    request = ChatRequest(
        model="demo", messages=[{"role": "user", "content": text}], conversation_id=cid
    )
    events = [e async for e in services.chat.stream(who, request)]
    done = events[-1]
    assert isinstance(done, Done)
    return done


async def test_search_finds_a_word_from_the_middle_of_a_reply(services: Services) -> None:
    alice = await principal(services, "alice")
    owls = await chat(services, alice, "Tell me about owls")
    await chat(services, alice, "Tell me about cats")
    conversations = services.conversations
    # "streamed" is in the middle of every demo reply; "owls" in one question and its reply.
    assert len((await conversations.page(alice.user_id, query="streamed")).items) == 2
    found = await conversations.page(alice.user_id, query="owls")
    assert [c.id for c in found.items] == [owls.conversation_id]
    assert (await conversations.page(alice.user_id, query="giraffe")).items == []


async def test_search_covers_titles_and_stays_within_the_owner(services: Services) -> None:
    alice, bob = await principal(services, "alice"), await principal(services, "bob")
    done = await chat(services, alice, "hello")
    assert done.conversation_id is not None
    await services.conversations.change(alice, done.conversation_id, title="Quarterly budget")
    assert len((await services.conversations.page(alice.user_id, query="budget")).items) == 1
    assert (await services.conversations.page(bob.user_id, query="budget")).items == []


async def test_pages_cover_everything_once_newest_first(services: Services) -> None:
    alice = await principal(services, "alice")
    made = [(await chat(services, alice, f"question {i}")).conversation_id for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        page = await services.conversations.page(alice.user_id, limit=3, cursor=cursor)
        seen += [c.id for c in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == made[::-1]


async def test_a_deleted_conversation_is_gone_from_search_and_the_tree(
    services: Services,
) -> None:
    alice = await principal(services, "alice")
    done = await chat(services, alice, "Tell me about owls")
    assert done.conversation_id is not None
    await services.conversations.delete(alice, done.conversation_id)
    assert (await services.conversations.page(alice.user_id, query="owls")).items == []
    assert (await services.conversations.page(alice.user_id)).items == []


async def test_search_finds_chinese_words_inside_a_sentence(services: Services) -> None:
    alice = await principal(services, "alice")
    trip = await chat(services, alice, "我们明天去北京看长城")
    weather = await chat(services, alice, "今天天气很好适合散步")
    assert trip.conversation_id is not None and weather.conversation_id is not None
    await services.conversations.change(alice, weather.conversation_id, title="季度预算报告")

    async def found(query: str) -> list[str]:
        return [c.id for c in (await services.conversations.page(alice.user_id, query=query)).items]

    assert await found("北京") == [trip.conversation_id]
    assert await found("看长城") == [trip.conversation_id]
    assert await found("京") == [trip.conversation_id]  # one character, inside a word
    assert await found("城") == [trip.conversation_id]  # one character, at a sentence's end
    assert await found("天气") == [weather.conversation_id]
    assert await found("预算") == [weather.conversation_id]  # in the title only
    assert await found("北京 长城") == [trip.conversation_id]
    assert await found("北京 天气") == []  # every term in one message
    assert await found("长北") == []  # both characters are there, not side by side
    assert await found("上海") == []


async def test_search_takes_the_last_word_as_the_start_of_a_word(services: Services) -> None:
    alice = await principal(services, "alice")
    owls = await chat(services, alice, "Tell me about owls")
    found = await services.conversations.page(alice.user_id, query="about OWL")
    assert [c.id for c in found.items] == [owls.conversation_id]
    assert (await services.conversations.page(alice.user_id, query="owl about")).items == []
