"""The database handle: one async engine, its session factory, and the migration runner."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x63686174  # PostgreSQL advisory lock taken while migrating: "chat"


def _sqlite_pragmas(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


def private_file(path: Path) -> None:
    """Create the database file readable by its owner only, before SQLite opens it: SQLite
    gives its ``-wal`` and ``-shm`` files the database file's mode. A file that is already
    there and readable by others is made private too."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for left in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if left.exists() and left.stat().st_mode & 0o077:
            left.chmod(0o600)


class Database:
    def __init__(self, url: str, *, busy_timeout_ms: int = 5000) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            private_file(Path(parsed.database))
        kwargs: dict[str, Any] = {}
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas(busy_timeout_ms))
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> AsyncSession:
        return self.sessions()

    async def upgrade(self) -> None:
        """Bring the schema to the newest migration.

        A schema that is already current is recognised without Alembic, which costs the server
        about 12 MB of memory and a good part of its start-up once imported. Processes that
        start together on one database (instances, workers, a CLI command beside a server) take
        turns: the first migrates, the others then find the schema current."""
        async with self._migration_turn(), self.engine.begin() as conn:
            if not self.is_sqlite:
                # Held to the end of this transaction, which holds the (transactional) DDL too.
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            if not await conn.run_sync(_plainly_current):
                await conn.run_sync(_upgrade)

    @contextlib.asynccontextmanager
    async def _migration_turn(self) -> AsyncIterator[None]:
        """On SQLite, whose DDL does not wait for another writer's, a lock file beside the
        database file; elsewhere the database's own lock is taken in ``upgrade``."""
        database = make_url(self.url).database
        if not self.is_sqlite or not database or database == ":memory:":
            yield
            return
        fd = os.open(f"{database}.migrate-lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    async def is_current(self) -> bool:
        async with self.engine.connect() as conn:
            if await conn.run_sync(_plainly_current):
                return True
            return bool(await conn.run_sync(_is_current))

    async def close(self) -> None:
        await self.engine.dispose()


def _newest_file_revision() -> str | None:
    """The revision of the newest migration file, by the ``NNNN_name.py`` naming rule."""
    numbers = [p.name[:4] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")]
    return max(numbers, default=None)


def _plainly_current(connection: Connection) -> bool:
    """True when the database stands at the newest migration file; False means "ask Alembic",
    which also covers every case this plain reading cannot judge."""
    newest = _newest_file_revision()
    if newest is None or not inspect(connection).has_table("alembic_version"):
        return False
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    return [row[0] for row in rows] == [newest]


def _alembic_config(connection: Connection) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), "head")


def _is_current(connection: Connection) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(connection))
    current = MigrationContext.configure(connection).get_current_heads()
    return set(current) == set(script.get_heads())
