"""The database the whole suite runs on: SQLite files by default, a PostgreSQL server with
``CHATGATE_TEST_DATABASE=postgresql`` (``CHATGATE_TEST_POSTGRES`` names the server, by default
``postgresql://postgres@127.0.0.1:5432/postgres``).

On PostgreSQL every test gets a database of its own, handed to everything it starts (servers in
threads, ``chatgate`` subprocesses, settings it loads itself) as ``CHATGATE_DATABASE_URL``. The
migrations run once, into a template; a test's database is a copy of it. Dropping a database
costs PostgreSQL a checkpoint (about a second), so a database a test is done with is emptied
instead (its tables truncated, the rows the migrations put there written back) and given to
the next test; one whose schema a test changed is dropped. The databases left are dropped at the
end of the run.

A test that starts ``chatgate`` processes gives them ``process_env()``, and reads or writes what
they stored with ``query()``: the same on either database.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chatgate.store.db import Database

T = TypeVar("T")

BACKEND = os.environ.get("CHATGATE_TEST_DATABASE", "sqlite").strip().lower() or "sqlite"
if BACKEND not in ("sqlite", "postgresql"):
    raise SystemExit(f"CHATGATE_TEST_DATABASE is sqlite or postgresql, not {BACKEND!r}")
SERVER = os.environ.get("CHATGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

_FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
_SCHEMA = """
SELECT coalesce(md5(string_agg(table_name || '.' || column_name || ':' || data_type || ':'
                               || coalesce(generation_expression, ''),
                               ',' ORDER BY table_name, column_name)), '')
       || (SELECT coalesce(string_agg(version_num, ','), '') FROM alembic_version)
  FROM information_schema.columns WHERE table_schema = 'public'
"""
_ALL_TABLES = "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public'"
_TABLES = """
SELECT quote_ident(tablename) FROM pg_tables
 WHERE schemaname = 'public' AND tablename <> 'alembic_version' ORDER BY tablename
"""


def process_env(**values: str) -> dict[str, str]:
    """The environment of a ``chatgate`` process a test starts: the machine's, without its own
    chatgate or OpenAI settings, but with the test's database (``CHATGATE_DATABASE_URL``) when
    the suite runs on PostgreSQL, so that the process and the test see the same rows."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATGATE_", "OPENAI_"))}
    url = os.environ.get("CHATGATE_DATABASE_URL")
    if url:
        env["CHATGATE_DATABASE_URL"] = url
    env.update(values)
    return env


def _run_apart(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end on a loop of its own, from any test (async ones too)."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coro).result(timeout=60)


def _url(data_dir: Path) -> str:
    return (
        os.environ.get("CHATGATE_DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir / 'chatgate.db'}"
    )


def query(data_dir: Path, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run one SQL statement (``:name`` parameters) on the database that the ``chatgate``
    processes of a test with this data directory use, whichever engine it is, and give its
    rows: the tests read what those processes wrote, or write what an earlier version did."""

    async def run() -> list[tuple[Any, ...]]:
        engine = create_async_engine(_url(data_dir))
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(statement), params)
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            await engine.dispose()

    return _run_apart(run())


def stored_bytes(data_dir: Path) -> bytes:
    """Everything the database of a data directory holds, to look for what must never be
    stored: SQLite's files as they are on disk (free pages too), or on PostgreSQL every row of
    every table as text."""
    if not os.environ.get("CHATGATE_DATABASE_URL"):
        return b"".join(path.read_bytes() for path in sorted(data_dir.glob("chatgate.db*")))

    async def dump() -> bytes:
        conn = await asyncpg.connect(_url(data_dir).replace("+asyncpg", "", 1))
        try:
            parts: list[str] = []
            for (table,) in await conn.fetch(_ALL_TABLES):
                parts.append(table)
                rows = await conn.fetch(f"SELECT t::text FROM {table} t")  # noqa: S608 (catalog names)
                parts.extend(row[0] for row in rows)
            return "\n".join(parts).encode()
        finally:
            await conn.close()

    return _run_apart(dump())


class PostgresDatabases:
    """A migrated template on the server and the copies tests use. Its calls are blocking:
    they run on a loop of its own, so a test's own event loop is never involved."""

    def __init__(self, server: str = SERVER) -> None:
        self.server = server
        self.prefix = "chatgate_test_" + secrets.token_hex(4)
        self.template = self.prefix + "_template"
        self._free: list[str] = []
        self._made: set[str] = set()
        self._count = 0
        self._seeds: dict[str, list[tuple[Any, ...]]] = {}
        self._schema = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._admin: asyncpg.Connection | None = None

    def url(self, name: str, driver: str = "postgresql+asyncpg") -> str:
        base = self.server.rsplit("/", 1)[0].split("://", 1)[1]
        return f"{driver}://{base}/{name}"

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=120)

    def start(self) -> None:
        self._run(self._start())

    async def _start(self) -> None:
        try:
            self._admin = await asyncpg.connect(self.server, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            raise SystemExit(
                f"CHATGATE_TEST_DATABASE=postgresql, but {self.server} cannot be reached: {exc}"
            ) from exc
        await self._admin.execute(f'CREATE DATABASE "{self.template}"')
        db = Database(self.url(self.template))
        try:
            await db.upgrade()
        finally:
            await db.close()
        conn = await asyncpg.connect(self.url(self.template, "postgresql"))
        try:
            self._schema = await conn.fetchval(_SCHEMA)
            for table in await conn.fetch(_TABLES):
                rows = await conn.fetch(f"SELECT * FROM {table[0]}")  # noqa: S608 (catalog names)
                if rows:
                    self._seeds[table[0]] = [tuple(row.values()) for row in rows]
        finally:
            await conn.close()

    def take(self) -> str:
        """A database no one uses, as it stands after the migrations: its SQLAlchemy URL."""
        if self._free:
            return self.url(self._free.pop())
        self._count += 1
        name = f"{self.prefix}_{self._count}"
        self._run(self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        self._made.add(name)
        return self.url(name)

    def give_back(self, url: str) -> None:
        """Empty the database for the next test; one that cannot be emptied is dropped (or, if
        even that fails, left to the end of the run): the next test gets a fresh copy."""
        name = url.rsplit("/", 1)[1]
        try:
            reset = self._run(self._reset(name))
        except _FAILURES:
            reset = False
        if reset:
            self._free.append(name)
            return
        with contextlib.suppress(*_FAILURES):
            self._run(self._drop(name))

    async def _execute(self, statement: str) -> None:
        assert self._admin is not None
        await self._admin.execute(statement)

    async def _reset(self, name: str) -> bool:
        """Empty a database a test is done with; False when its schema was changed."""
        assert self._admin is not None
        await self._admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        conn = await asyncpg.connect(self.url(name, "postgresql"), timeout=10)
        try:
            if await conn.fetchval(_SCHEMA) != self._schema:
                return False
            tables = [row[0] for row in await conn.fetch(_TABLES)]
            async with conn.transaction():
                await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
                for table, rows in self._seeds.items():
                    await conn.copy_records_to_table(table.strip('"'), records=rows)
        except asyncpg.PostgresError:
            return False
        finally:
            await conn.close()
        return True

    async def _drop(self, name: str) -> None:
        await self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._made.discard(name)

    def close(self) -> None:
        async def drop_all() -> None:
            for name in [*self._made, self.template]:
                await self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if self._admin is not None:
                await self._admin.close()

        try:
            self._run(drop_all())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()
