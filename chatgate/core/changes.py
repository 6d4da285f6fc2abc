"""How a change to accounts reaches every server's caches within about a second.

Whoever changes an account (a server's API, or the ``chatgate`` command in another process)
records the change in the database in the change's own transaction, so the record exists if
and only if the change committed. It names whose rights or limits moved: a user (disabled,
demoted, new password, new quotas, logged out everywhere), a key (revoked, new quotas) or one
login (logged out). Records are numbered in the order they commit.

Each server reads the records it has not seen about once a second, in a task of its own (one
SELECT by primary key), and drops what its caches hold about those users, keys and logins; the
request path still reads only the caches. A server that finds records missing (pruned while
it was not reading) drops everything, which is always safe.

``ChangeFeed`` is the whole contract: ``record`` within a change's transaction, ``watch`` to
hear every change made anywhere. A feed over Redis pub/sub or PostgreSQL LISTEN/NOTIFY (whose
NOTIFY is itself transactional) can take this one's place without touching its callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.store.db import Database
from chatgate.store.tables import AccountChange, ChangeCount

log = logging.getLogger("chatgate.changes")

POLL_SECONDS = 1.0
KEEP = 1000  # records kept: a server further behind than this forgets everything it cached


@dataclass(frozen=True, slots=True)
class Change:
    """Whose cached rights or limits are out of date."""

    user_id: int | None = None
    key_id: int | None = None
    session_id: str | None = None


# Called with each change heard, or with None when some were missed: forget everything.
Listener = Callable[[Change | None], None]


class ChangeFeed(Protocol):
    async def record(self, session: AsyncSession, change: Change) -> None:
        """Record a change in the caller's transaction; it travels once that commits."""

    def watch(self, listener: Listener) -> None:
        """Call ``listener`` with every change recorded from now on, by any process."""

    async def close(self) -> None: ...


class DatabaseChangeFeed:
    """Changes as numbered rows in the database, read once a second: for one machine, or
    several instances sharing one database."""

    def __init__(
        self, db: Database, clock: Callable[[], float], *, interval: float = POLL_SECONDS
    ) -> None:
        self._db = db
        self._now = clock
        self.interval = interval
        self.seen: int | None = None  # the number of the last change read
        self._task: asyncio.Task[None] | None = None

    async def record(self, session: AsyncSession, change: Change) -> None:
        # Bumping the one counter row first makes concurrent changes take their numbers in
        # the order they commit (its lock is held to the end of the transaction), so a reader
        # that has seen number N can never later find a smaller one committed.
        bump = (
            update(ChangeCount)
            .where(ChangeCount.id == 1)
            .values(seq=ChangeCount.seq + 1)
            .returning(ChangeCount.seq)
            .execution_options(synchronize_session=False)
        )
        seq = (await session.execute(bump)).scalar_one()
        await session.execute(
            insert(AccountChange).values(
                seq=seq,
                at=self._now(),
                user_id=change.user_id,
                key_id=change.key_id,
                session_id=change.session_id,
            )
        )
        await session.execute(delete(AccountChange).where(AccountChange.seq <= seq - KEEP))

    def watch(self, listener: Listener) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._follow(listener))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self, listener: Listener) -> None:
        failing = False
        while True:
            try:
                await self.read(listener)
                if failing:
                    log.info("account changes are read again")
                failing = False
            except Exception as exc:
                if not failing:  # once per outage, not once a second
                    log.warning("cannot read account changes (%s); retrying", exc)
                failing = True
            await asyncio.sleep(self.interval)

    async def read(self, listener: Listener) -> None:
        """One reading: the first notes where the changes stand; each later one passes on
        the changes since the last (or None, when some were pruned before they were read)."""
        if self.seen is None:
            self.seen = await self._latest()
            return
        rows = await self._since(self.seen)
        if not rows:
            return
        if rows[0][0] != self.seen + 1:
            log.info("account changes %d to %d were missed", self.seen + 1, rows[0][0] - 1)
            listener(None)
        else:
            for _, change in rows:
                listener(change)
        self.seen = rows[-1][0]

    async def _latest(self) -> int:
        async with self._db.engine.connect() as conn:
            seq = await conn.scalar(select(ChangeCount.seq).where(ChangeCount.id == 1))
        return int(seq or 0)

    async def _since(self, last: int) -> list[tuple[int, Change]]:
        query = (
            select(
                AccountChange.seq,
                AccountChange.user_id,
                AccountChange.key_id,
                AccountChange.session_id,
            )
            .where(AccountChange.seq > last)
            .order_by(AccountChange.seq)
        )
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(row.seq, Change(row.user_id, row.key_id, row.session_id)) for row in rows]
