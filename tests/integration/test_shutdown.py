"""A clean stop loses nothing that was written behind."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import openai
from sqlalchemy import func, select
from support import Gateway

from chatgate.settings import Settings
from chatgate.store.db import Database
from chatgate.store.tables import RequestLog, UsageDaily


def test_usage_written_behind_is_flushed_when_the_server_stops(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(usage_flush_seconds=3600)
    gateway = Gateway(settings).start()
    api = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key("alice"), max_retries=0)
    for _ in range(5):
        api.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
    assert gateway.services.writer.pending > 0
    gateway.stop()

    async def count() -> tuple[int, int]:
        db = Database(settings.resolved_database_url)
        async with db.session() as session:
            logged = await session.scalar(select(func.count()).select_from(RequestLog))
            requests = await session.scalar(select(func.sum(UsageDaily.requests)))
        await db.close()
        return int(logged or 0), int(requests or 0)

    assert asyncio.run(count()) == (5, 5)


def test_a_reply_the_database_refuses_does_not_cost_the_queue_at_shutdown(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(usage_flush_seconds=3600)
    gateway = Gateway(settings).start()
    api = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key("alice"), max_retries=0)
    for _ in range(3):
        api.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
    bad = {
        "created_at": 1.0,
        "user_id": 1,
        "key_id": 0,
        "model": "demo",
        "status": "ok",
        "finish_reason": {"not": "a word"},
        "counted": True,
        "prompt_tokens": 10**30,
        "completion_tokens": 0,
        "cost": 0.0,
        "latency_ms": 1.0,
    }
    gateway.run(_enqueue(gateway, bad))
    for _ in range(2):
        api.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
    gateway.stop()

    async def count() -> tuple[int, int]:
        db = Database(settings.resolved_database_url)
        async with db.session() as session:
            logged = await session.scalar(select(func.count()).select_from(RequestLog))
            requests = await session.scalar(select(func.sum(UsageDaily.requests)))
        await db.close()
        return int(logged or 0), int(requests or 0)

    assert asyncio.run(count()) == (6, 5)


async def _enqueue(gateway: Gateway, row: dict[str, object]) -> None:
    gateway.services.writer.insert(RequestLog, row)
