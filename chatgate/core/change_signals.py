"""Wake-ups that carry changes to every process at once: PostgreSQL ``LISTEN/NOTIFY`` on
PostgreSQL, Redis pub/sub when Redis is configured on another database.

A signal carries no authority: the change records in the database stay the truth (numbered,
written in the change's own transaction), and a signal only tells the other processes to read
them now rather than at their next once-a-second reading. A lost signal (a listener
reconnecting, Redis restarting) therefore costs at most that second, never a change. A NOTIFY
sent within the change's transaction is delivered only if it commits; a Redis message is
published once the transaction has committed.

Signals also carry announcements that have no record in the database, such as "providers were
reloaded": those reach the processes listening at the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import event, func, select
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.store.db import Database

if TYPE_CHECKING:
    from chatgate.settings import Settings

log = logging.getLogger("chatgate.changes")

CHANNEL = "chatgate_changes"
RETRY_SECONDS = 1.0

Handler = Callable[[str], None]
"""Called with each message heard, and with ``""`` when listening (re)starts: whatever was
sent while no one listened is then read from the database."""


class Signals(Protocol):
    async def within(self, session: AsyncSession, message: str) -> None:
        """Send ``message`` once the caller's transaction commits (never if it does not)."""

    async def publish(self, message: str) -> None:
        """Send ``message`` now."""

    async def listen(self, handler: Handler) -> None:
        """Hear messages until cancelled, reconnecting when the connection is lost."""

    async def close(self) -> None: ...


def signals_for(settings: Settings, db: Database) -> Signals | None:
    """PostgreSQL's own notifications on PostgreSQL; Redis pub/sub when Redis is configured
    on another database; none for a single process on SQLite."""
    if not db.is_sqlite:
        return PostgresSignals(db)
    if settings.redis_url:
        return RedisSignals(settings.redis_url, settings.redis_prefix + "changes")
    return None


class PostgresSignals:
    """``NOTIFY`` in the change's transaction; one connection of its own ``LISTEN``s."""

    def __init__(self, db: Database, channel: str = CHANNEL) -> None:
        self._db = db
        self.channel = channel

    async def within(self, session: AsyncSession, message: str) -> None:
        await session.execute(select(func.pg_notify(self.channel, message)))

    async def publish(self, message: str) -> None:
        async with self._db.engine.begin() as conn:
            await conn.execute(select(func.pg_notify(self.channel, message)))

    async def listen(self, handler: Handler) -> None:
        import asyncpg  # type: ignore[import-untyped]  # the driver of postgresql+asyncpg

        url = make_url(self._db.url).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        failing = False
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(dsn, timeout=10)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                if not failing:
                    log.warning("cannot listen for changes (%s); retrying", type(exc).__name__)
                failing = True
                await asyncio.sleep(RETRY_SECONDS)
                continue
            try:
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(self.channel, lambda *args: handler(args[-1]))
                if failing:
                    log.info("listening for changes again")
                failing = False
                handler("")
                await lost.wait()
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(RETRY_SECONDS)

    async def close(self) -> None:
        pass


class RedisSignals:
    """Redis pub/sub on one channel, published after the change's transaction commits."""

    def __init__(self, url: str, channel: str) -> None:
        self._url = url
        self.channel = channel
        self._client: Any = None
        self._sending: set[asyncio.Task[None]] = set()

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis

            self._client = aioredis.from_url(self._url)
        return self._client

    async def within(self, session: AsyncSession, message: str) -> None:
        loop = asyncio.get_running_loop()

        def committed(_session: Any) -> None:
            task = loop.create_task(self._send(message))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

        event.listen(session.sync_session, "after_commit", committed, once=True)

    async def _send(self, message: str) -> None:
        try:
            await self.publish(message)
        except Exception as exc:  # the change is recorded; others read it within a second
            log.warning("could not signal a change through Redis (%s)", type(exc).__name__)

    async def publish(self, message: str) -> None:
        await self._redis().publish(self.channel, message)

    async def listen(self, handler: Handler) -> None:
        from redis.exceptions import RedisError

        failing = False
        while True:
            pubsub = self._redis().pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if failing:
                    log.info("listening for changes again")
                failing = False
                handler("")
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        handler(data.decode() if isinstance(data, bytes) else str(data))
            except (RedisError, OSError) as exc:
                if not failing:
                    log.warning("cannot listen for changes (%s); retrying", type(exc).__name__)
                failing = True
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())
            await asyncio.sleep(RETRY_SECONDS)

    async def close(self) -> None:
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
