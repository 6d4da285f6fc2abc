"""Whatever an upstream's reply puts in a row, the writer keeps writing: every row is written
or set aside, good rows always land, the day's request counts are never lost, and the writer
is healthy and writing afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from chatgate.store.db import Database
from chatgate.store.tables import Conversation, RequestLog, StoredMessage, UsageDaily, User
from chatgate.store.writer import BatchWriter

JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**62, max_value=10**40)
    | st.floats()
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
TEXTS = st.text(max_size=300) | st.text(alphabet=st.characters(codec="utf-16"), max_size=50)


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('props') / 'w.db'}"

    async def make() -> None:
        db = Database(url)
        await db.upgrade()
        async with db.session() as session, session.begin():
            session.add(User(id=1, name="u", created_at=0.0))
            await session.flush()
            session.add(Conversation(id="c", user_id=1, created_at=0.0, updated_at=0.0))
        await db.close()

    asyncio.run(make())
    return url


def log_row(n: int, **odd: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "created_at": float(n),
        "user_id": 1,
        "key_id": 0,
        "model": "demo",
        "provider": "demo",
        "status": "ok",
        "error_code": None,
        "finish_reason": "stop",
        "counted": True,
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "cost": 0.0,
        "latency_ms": 1.0,
        "first_token_ms": None,
    }
    return row | odd


def message_row(n: int, **odd: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": f"m{n}",
        "conversation_id": "c",
        "parent_id": None,
        "role": "assistant",
        "content": "fine",
        "model": "demo",
        "finish_reason": "stop",
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "created_at": float(n),
    }
    return row | odd


REPLY = st.fixed_dictionaries(
    {
        "prompt_tokens": JSONISH,
        "completion_tokens": JSONISH,
        "finish_reason": JSONISH,
        "content": TEXTS | JSONISH,
        "cost": JSONISH,
    }
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(replies=st.lists(REPLY, min_size=1, max_size=6))
def test_no_reply_from_an_upstream_stops_the_writer(
    db_url: str, replies: list[dict[str, Any]]
) -> None:
    asyncio.run(_write_replies(db_url, replies))


async def _write_replies(url: str, replies: list[dict[str, Any]]) -> None:
    db = Database(url)
    writer = BatchWriter(db)
    day = "2026-01-01"
    for n, reply in enumerate(replies):
        good, odd = 2 * n, 2 * n + 1
        writer.insert(RequestLog, log_row(good))
        writer.insert(StoredMessage, message_row(good))
        writer.insert(
            RequestLog,
            log_row(
                odd,
                prompt_tokens=reply["prompt_tokens"],
                completion_tokens=reply["completion_tokens"],
                finish_reason=reply["finish_reason"],
                cost=reply["cost"],
            ),
        )
        writer.insert(
            StoredMessage,
            message_row(
                odd,
                content=reply["content"],
                finish_reason=reply["finish_reason"],
                prompt_tokens=reply["prompt_tokens"],
                completion_tokens=reply["completion_tokens"],
            ),
        )
        writer.add_usage(
            (1, 0, "demo", day),
            requests=1,
            errors=0,
            prompt_tokens=reply["prompt_tokens"],
            completion_tokens=reply["completion_tokens"],
            cost=reply["cost"],
        )
    enqueued = 4 * len(replies)
    await writer.flush()
    assert writer.pending == 0 and writer.health() is None

    async with db.session() as session:
        logged = set((await session.scalars(select(RequestLog.created_at))).all())
        stored = set((await session.scalars(select(StoredMessage.id))).all())
        requests = await session.scalar(select(UsageDaily.requests).where(UsageDaily.day == day))
    goods = range(0, 2 * len(replies), 2)
    assert {float(n) for n in goods} <= logged
    assert {f"m{n}" for n in goods} <= stored
    assert len(logged) + len(stored) + writer.stats.set_aside >= enqueued
    assert requests == len(replies)

    writer.insert(RequestLog, log_row(10_000))  # and it goes on writing
    await writer.stop()
    async with db.session() as session, session.begin():
        assert await session.scalar(
            select(func.count()).select_from(RequestLog).where(RequestLog.created_at == 10_000.0)
        )
        await session.execute(delete(RequestLog))
        await session.execute(delete(StoredMessage))
        await session.execute(delete(UsageDaily))
    await db.close()
