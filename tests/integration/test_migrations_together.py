"""Several processes that start together on one new database (two instances behind a load
balancer, a CLI command beside a server) take turns to migrate it: none fails on a table the
other has just made."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from databases import BACKEND, SERVER, process_env
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chatgate.store.db import MIGRATIONS

ROOT = Path(__file__).parents[2]
PROCESSES = 4

# Each process imports what it needs first, then waits for one moment shared by all.
_MIGRATE_AT = """
import asyncio, sys, time
from chatgate.store.db import Database
import alembic.command  # imported before the moment, so that none has a head start

async def main():
    db = Database(sys.argv[1])
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
    try:
        await db.upgrade()
    finally:
        await db.close()

asyncio.run(main())
"""


def _admin(statement: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(SERVER, timeout=10)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture
def new_database(tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it yet: a new file, or a new PostgreSQL database."""
    if BACKEND == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'chatgate.db'}"
        return
    name = "chatgate_together_" + secrets.token_hex(4)
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://{SERVER.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _versions(url: str) -> list[str]:
    async def read() -> list[str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
                return [row[0] for row in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


@pytest.mark.timeout(180)
def test_four_processes_migrating_one_new_database_at_once_all_start(new_database: str) -> None:
    env = process_env(PYTHONPATH=str(ROOT))
    moment = f"{time.time() + 6:.3f}"  # after every interpreter has started and imported
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE_AT, new_database, moment],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * PROCESSES, "\n".join(errors)
    newest = max(p.name[:4] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    assert _versions(new_database) == [newest]
