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
