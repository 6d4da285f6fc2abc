"""Write-behind on a real SQLite database: batches land, and one refused row loses nothing else."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from chatgate.store.db import Database
from chatgate.store.tables import RequestLog, StoredMessage, UsageDaily
from chatgate.store.writer import QUEUE_BOUND, BatchWriter


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


# ---- no row stops the writer ---------------------------------------------------------------


async def count_rows(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(RequestLog)) or 0)


async def test_a_reply_claiming_ten_to_the_thirty_tokens_is_written_clamped_and_writes_go_on(
    tmp_path: Path,
) -> None:
    db = await open_db(tmp_path)
    writer = BatchWriter(db)
    huge = 10**30
    writer.insert(RequestLog, log_row(1) | {"prompt_tokens": huge})
    writer.insert(RequestLog, log_row(2))
    key = (1, 0, "demo", "2026-01-01")
    writer.add_usage(key, requests=1, errors=0, prompt_tokens=huge, completion_tokens=1, cost=0.0)
    await writer.flush()
    assert writer.pending == 0 and writer.health() is None
    async with db.session() as session:
        logged = sorted((await session.scalars(select(RequestLog.prompt_tokens))).all())
        usage = (await session.scalars(select(UsageDaily))).one()
    assert logged == [2, 2**63 - 1]
    assert (usage.requests, usage.prompt_tokens, usage.completion_tokens) == (1, 2**63 - 1, 1)
    writer.insert(RequestLog, log_row(3))
    await writer.flush()
    assert await count_rows(db) == 3
    await db.close()


# Values SQLite refuses: SQLite itself stores a float or text in an integer column as given.
BOUNDED = [
    # (column, value the upstream gave, what is stored)
    ("finish_reason", {"reason": "stop"}, '{"reason": "stop"}'),
    ("finish_reason", ["stop", "length"], '["stop", "length"]'),
    ("finish_reason", 7, "7"),
    ("finish_reason", "stop\ud800", "stop?"),
    ("completion_tokens", -(10**40), -(2**63 - 1)),
    ("completion_tokens", True, 1),
    ("completion_tokens", None, 0),
    ("error_code", {"nested": [1, {"x": None}]}, '{"nested": [1, {"x": null}]}'),
]


@pytest.mark.parametrize(("column", "given", "stored"), BOUNDED)
async def test_a_value_that_does_not_fit_its_column_is_bounded_and_its_row_written(
    tmp_path: Path, column: str, given: object, stored: object
) -> None:
    db = await open_db(tmp_path)
    writer = BatchWriter(db)
    writer.insert(RequestLog, log_row(1))
    writer.insert(RequestLog, log_row(2) | {column: given})
    writer.insert(RequestLog, log_row(3))
    await writer.flush()
    async with db.session() as session:
        rows = (await session.scalars(select(RequestLog).order_by(RequestLog.created_at))).all()
    await db.close()
    assert [r.created_at for r in rows] == [1.0, 2.0, 3.0]
    assert getattr(rows[1], column) == stored
    assert writer.stats.set_aside == 0


UNFIT = [
    ("prompt_tokens", {"total": 3}),
    ("prompt_tokens", float("nan")),
    ("created_at", None),
    ("latency_ms", [1.0]),
    ("counted", "yes"),
    ("user_id", None),
]


@pytest.mark.parametrize(("column", "given"), UNFIT)
async def test_a_row_that_cannot_be_made_to_fit_is_set_aside_with_an_error_that_shows_no_value(
    tmp_path: Path, column: str, given: object, caplog: pytest.LogCaptureFixture
) -> None:
    db = await open_db(tmp_path)
    writer = BatchWriter(db)
    for n in range(1, 6):
        writer.insert(RequestLog, log_row(n) | ({column: given} if n == 3 else {}))
    writer.add_usage(
        (1, 0, "demo", "2026-01-01"),
        requests=5,
        errors=0,
        prompt_tokens=1,
        completion_tokens=1,
        cost=0.0,
    )
    with caplog.at_level("ERROR", logger="chatgate.store"):
        await writer.flush()
    async with db.session() as session:
        written = sorted((await session.scalars(select(RequestLog.created_at))).all())
        requests = await session.scalar(select(UsageDaily.requests))
    await db.close()
    assert written == [1.0, 2.0, 4.0, 5.0]
    assert requests == 5
    assert writer.stats.set_aside == 1 and writer.pending == 0 and writer.health() is None
    [record] = [r for r in caplog.records if "set aside" in r.getMessage()]
    assert "request_log" in record.getMessage()
    assert str(given) not in record.getMessage() or given is None


async def test_a_message_of_a_deleted_conversation_does_not_hold_back_its_neighbours(
    tmp_path: Path,
) -> None:
    db = await open_db(tmp_path)
    writer = BatchWriter(db)
    orphan = {
        "id": "m1",
        "conversation_id": "gone",
        "role": "user",
        "content": "x",
        "created_at": 1.0,
    }
    for n in range(40):
        writer.insert(RequestLog, log_row(n))
        if n in (7, 31):
            writer.insert(StoredMessage, orphan | {"id": f"m{n}"})
    await writer.flush()
    assert await count_rows(db) == 40
    assert writer.stats.set_aside == 2
    await db.close()


async def test_a_locked_database_keeps_the_queue_and_says_so_until_it_is_free(
    tmp_path: Path,
) -> None:
    db = await open_db(tmp_path)
    await db.close()
    db = Database(db.url, busy_timeout_ms=50)
    writer = BatchWriter(db, interval=0.01)
    writer.start()
    other = sqlite3.connect(tmp_path / "w.db")
    other.execute("BEGIN EXCLUSIVE")
    try:
        for n in range(10):
            writer.insert(RequestLog, log_row(n))
        writer.add_usage(
            (1, 0, "demo", "2026-01-01"),
            requests=10,
            errors=0,
            prompt_tokens=0,
            completion_tokens=0,
            cost=0.0,
        )
        for _ in range(200):
            if writer.health() is not None:
                break
            await asyncio.sleep(0.01)
        assert "database is locked" in (writer.health() or "")
        assert writer.pending == 11 and writer.stats.flush_failures >= 1
    finally:
        other.rollback()
        other.close()
    for _ in range(500):
        if writer.health() is None and writer.pending == 0:
            break
        await asyncio.sleep(0.01)
    await writer.stop()
    assert await count_rows(db) == 10 and writer.stats.set_aside == 0
    async with db.session() as session:
        assert await session.scalar(select(UsageDaily.requests)) == 10
    await db.close()


async def test_stopping_writes_the_queue_around_a_bad_row(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    writer = BatchWriter(db, interval=3600)
    writer.start()
    writer.insert(RequestLog, log_row(1) | {"finish_reason": {"an": "object"}})
    writer.insert(RequestLog, log_row(2) | {"prompt_tokens": 10**30})
    writer.insert(RequestLog, log_row(3) | {"prompt_tokens": "many"})
    writer.insert(RequestLog, log_row(4))
    await writer.stop()
    assert await count_rows(db) == 3 and writer.pending == 0
    await db.close()


async def test_a_queue_past_its_bound_is_reported(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    writer = BatchWriter(db, max_batch=10**9)
    for n in range(QUEUE_BOUND + 1):
        writer.update(RequestLog, {"id": n}, {"status": "ok"})
    assert f"{QUEUE_BOUND + 1} database writes are waiting" in (writer.health() or "")
    await writer.flush()
    assert writer.health() is None
    await db.close()


async def test_an_amended_row_is_one_insert_while_queued_and_an_update_once_written(
    tmp_path: Path,
) -> None:
    db = await open_db(tmp_path)
    writer = BatchWriter(db)
    key = ("user_id", "created_at")
    quick = writer.insert_amendable(RequestLog, log_row(1) | {"status": "in_flight"}, key)
    slow = writer.insert_amendable(RequestLog, log_row(2) | {"status": "in_flight"}, key)
    quick.amend({"status": "ok", "completion_tokens": 5})
    assert writer.pending == 2
    await writer.flush()
    slow.amend({"status": "cancelled", "completion_tokens": 9})
    assert writer.pending == 1
    await writer.flush()
    async with db.session() as session:
        rows = (
            await session.execute(select(RequestLog.status, RequestLog.completion_tokens))
        ).all()
    await db.close()
    assert sorted(map(tuple, rows)) == [("cancelled", 9), ("ok", 5)]


async def test_an_amended_update_goes_out_once_while_queued_and_again_once_written(
    tmp_path: Path,
) -> None:
    from chatgate.store.tables import Conversation, User

    db = await open_db(tmp_path)
    async with db.session() as session, session.begin():
        session.add(User(id=1, name="u", created_at=0.0))
        await session.flush()
        session.add(Conversation(id="c", user_id=1, created_at=0.0, updated_at=0.0))
    writer = BatchWriter(db)
    leaf = writer.update_amendable(Conversation, {"id": "c"}, {"current_leaf_id": "question"})
    leaf.amend({"current_leaf_id": "reply-1"})
    assert writer.pending == 1
    await writer.flush()
    leaf.amend({"current_leaf_id": "reply-2"})
    assert writer.pending == 1
    await writer.flush()
    async with db.session() as session:
        assert await session.scalar(select(Conversation.current_leaf_id)) == "reply-2"
    await db.close()


# ---- the same on PostgreSQL, which refuses more than SQLite ---------------------------------

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
async def pg_db() -> AsyncIterator[Database]:
    import asyncpg

    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError):
        pytest.skip("no PostgreSQL server is accepting connections at 127.0.0.1:5432")
    name = "chatgate_writer_" + secrets.token_hex(6)
    await conn.execute(f'CREATE DATABASE "{name}"')
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}")
    try:
        await db.upgrade()
        yield db
    finally:
        await db.close()
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@pytest.mark.postgres
async def test_on_postgresql_replies_that_do_not_fit_are_bounded_and_the_days_count_kept(
    pg_db: Database,
) -> None:
    writer = BatchWriter(pg_db)
    int4 = 2**31 - 1
    writer.insert(RequestLog, log_row(1) | {"prompt_tokens": 10**30})
    writer.insert(RequestLog, log_row(2) | {"finish_reason": "because " * 20})
    writer.insert(RequestLog, log_row(3) | {"error_code": "nul\x00byte"})
    writer.insert(RequestLog, log_row(4) | {"prompt_tokens": "many"})
    writer.insert(RequestLog, log_row(5))
    key = (1, 0, "demo", "2026-01-01")
    for _ in range(3):  # each claims the most a column holds: the day's sum would overflow it
        writer.add_usage(key, requests=1, errors=0, prompt_tokens=int4, completion_tokens=1, cost=0)
        await writer.flush()
    assert writer.pending == 0 and writer.health() is None
    async with pg_db.session() as session:
        rows = (await session.scalars(select(RequestLog).order_by(RequestLog.created_at))).all()
        usage = (await session.scalars(select(UsageDaily))).one()
    assert [r.created_at for r in rows] == [1.0, 2.0, 3.0, 5.0]
    assert rows[0].prompt_tokens == int4
    assert rows[1].finish_reason == ("because " * 20)[:32]
    assert rows[2].error_code == "nulbyte"
    assert (usage.requests, usage.prompt_tokens, usage.completion_tokens) == (3, int4, 3)
    assert writer.stats.set_aside == 1
