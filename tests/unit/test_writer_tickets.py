"""The writer's tickets, on a real SQLite database: a write's ticket is settled once the write
is in the database (or set aside), never while it waits, is in hand, or was put back because
the database was locked. Conversation caches shared between processes trust them to know
whether the database has caught up with what they hold."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy import func, select

from chatgate.store.db import Database
from chatgate.store.tables import RequestLog, StoredMessage
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
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    await db.upgrade()
    return db


async def rows(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(RequestLog)) or 0)


async def test_a_write_is_settled_once_it_is_in_the_database_and_not_before(
    tmp_path: Path,
) -> None:
    db = await open_db(tmp_path)
    writer = BatchWriter(db, interval=3600)
    writer.insert(RequestLog, log_row(1))
    first = writer.enqueued
    handle = writer.update_amendable(RequestLog, {"id": 1}, {"status": "ok"})
    second = writer.enqueued
    assert (first, second) == (1, 2) and writer.settled == 0
    await writer.flush()
    assert writer.settled == second and await rows(db) == 1
    handle.amend({"status": "error"})  # written already: an update of its own, a new ticket
    assert writer.enqueued == 3 and writer.settled == 2
    await writer.flush()
    assert writer.settled == 3
    await db.close()


async def test_a_write_set_aside_is_settled_with_the_rest_of_its_batch(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    writer = BatchWriter(db, interval=3600)
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
    writer.insert(RequestLog, log_row(1))
    await writer.flush()
    assert writer.settled == writer.enqueued == 2
    assert writer.stats.set_aside == 1 and await rows(db) == 1
    await db.close()


async def test_writes_put_back_by_a_locked_database_stay_unsettled_until_written(
    tmp_path: Path,
) -> None:
    db = await open_db(tmp_path)
    await db.close()
    db = Database(db.url, busy_timeout_ms=50)
    writer = BatchWriter(db, interval=3600)
    writer.insert(RequestLog, log_row(1))
    other = sqlite3.connect(tmp_path / "t.db")
    other.execute("BEGIN EXCLUSIVE")
    try:
        failed = False
        try:
            await writer.flush()
        except Exception:
            failed = True
        assert failed and writer.pending == 1
        writer.insert(RequestLog, log_row(2))
        assert writer.settled == 0 and writer.enqueued == 2
    finally:
        other.rollback()
        other.close()
    await writer.flush()
    assert writer.settled == 2 and await rows(db) == 2
    await db.close()


async def test_a_flush_that_finds_its_writes_in_hand_returns_once_they_are_written(
    tmp_path: Path,
) -> None:
    """A turn's end waits for its writes while the background task may be writing them: the
    second flush waits for the first and finds everything settled."""
    db = await open_db(tmp_path)
    writer = BatchWriter(db, interval=3600)
    for n in range(50):
        writer.insert(RequestLog, log_row(n))
    ticket = writer.enqueued
    background = asyncio.create_task(writer.flush())
    await asyncio.sleep(0)  # the first flush has taken the batch and is writing it
    assert writer.pending == 50 and writer.settled < ticket
    await writer.flush()
    assert writer.settled >= ticket and await rows(db) == 50
    await background
    await db.close()
