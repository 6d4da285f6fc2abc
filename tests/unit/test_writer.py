"""Write-behind on a real SQLite database: batches land, and one refused row loses nothing else."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from chatgate.store.db import Database
from chatgate.store.tables import RequestLog, StoredMessage, UsageDaily
from chatgate.store.writer import BatchWriter


def log_row(n: int) -> dict[str, object]:
    return {
        "created_at": float(n),
        "user_id": 1,
        "key_id": 0,
        "model": "demo",
        "status": "ok",
        "counted": True,
        "prompt_tokens": n,
        "completion_tokens": 0,
        "cost": 0.0,
        "latency_ms": 1.0,
    }


async def open_db(tmp_path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    await db.upgrade()
    return db


async def test_a_refused_row_is_dropped_and_the_rest_of_the_batch_is_written(
    tmp_path: Path,
) -> None:
    db = await open_db(tmp_path)
    writer = BatchWriter(db)
    writer.insert(RequestLog, log_row(1))
    orphan = {
        "id": "m1",
        "conversation_id": "no-such-conversation",
        "role": "user",
        "content": "x",
        "created_at": 1.0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
    }
    writer.insert(StoredMessage, orphan)
    writer.insert(RequestLog, log_row(2))
    writer.add_usage(
        (1, 0, "demo", "2026-01-01"),
        requests=2,
        errors=0,
        prompt_tokens=3,
        completion_tokens=0,
        cost=0.0,
    )
    await writer.flush()
    assert writer.pending == 0
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(RequestLog)) == 2
        assert await session.scalar(select(func.count()).select_from(StoredMessage)) == 0
        assert await session.scalar(select(UsageDaily.requests)) == 2
    await db.close()


async def test_usage_totals_add_up_across_flushes(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    writer = BatchWriter(db)
    key = (1, 0, "demo", "2026-01-01")
    for _ in range(3):
        writer.add_usage(key, requests=1, errors=1, prompt_tokens=5, completion_tokens=7, cost=0.5)
        await writer.flush()
    async with db.session() as session:
        row = (await session.scalars(select(UsageDaily))).one()
    assert (row.requests, row.errors, row.prompt_tokens, row.completion_tokens) == (3, 3, 15, 21)
    assert row.cost == 1.5
    await db.close()


async def test_many_updates_in_one_flush_each_land_on_their_own_row(tmp_path: Path) -> None:
    from chatgate.store.tables import ApiKey, User

    db = await open_db(tmp_path)
    async with db.session() as session, session.begin():
        session.add(User(id=1, name="u", created_at=0.0))
        await session.flush()
        for n in range(1, 31):
            session.add(ApiKey(id=n, user_id=1, prefix=f"p{n}", key_hash=f"h{n}", created_at=0.0))
    writer = BatchWriter(db)
    for n in range(1, 31):
        writer.update(ApiKey, {"id": n}, {"last_used_at": float(100 + n)})
        if n == 15:  # another shape in between
            writer.update(ApiKey, {"id": 1}, {"label": "first", "last_used_at": 999.0})
    await writer.flush()
    async with db.session() as session:
        rows = (await session.execute(select(ApiKey.id, ApiKey.last_used_at, ApiKey.label))).all()
    await db.close()
    seen = {row.id: (row.last_used_at, row.label) for row in rows}
    assert seen[1] == (999.0, "first")
    assert all(seen[n] == (float(100 + n), None) for n in range(2, 31))
