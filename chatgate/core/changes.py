"""How a change to accounts reaches every server's caches within about a second.

Whoever changes an account (a server's API, or the ``chatgate`` command in another process)
records the change in the database in the change's own transaction, so the record exists if
and only if the change committed. It names whose rights or limits moved: a user (disabled,
demoted, new password, new quotas, logged out everywhere), a key (revoked, new quotas) or one
login (logged out). Records are numbered in the order they commit.

Each server reads the records it has not seen, in a task of its own (one SELECT by primary
key), and drops what its caches hold about those users, keys and logins; the request path still
reads only the caches. It reads them at once when signalled (``change_signals``: PostgreSQL
``NOTIFY`` sent in the change's transaction, or Redis pub/sub after it commits), and about once
a second in any case, so a signal lost costs a second at most. A server that finds records
missing (pruned while it was not reading) drops everything, which is always safe.

The same signals carry announcements that need no record, such as "providers were reloaded"
(``announce``/``hear``), to the servers listening at the time.

The count of records is also a version: messages taken out of a conversation are recorded as
a change that names no account (``number``), and a server's cached conversations compare the
count when they are used rather than wait for the signal (``core.conversations`` says why).

``ChangeFeed`` is the whole contract: ``record`` within a change's transaction, ``watch`` to
hear every change made anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.core.change_signals import Signals
from chatgate.store.db import Database
from chatgate.store.tables import AccountChange, ChangeCount

log = logging.getLogger("chatgate.changes")

POLL_SECONDS = 1.0
KEEP = 1000  # records kept: a server further behind than this forgets everything it cached


@dataclass(frozen=True, slots=True)
class Change:
    """Whose cached rights or limits are out of date. One that names no one moves the count
    only: messages were taken out of a conversation, which conversation caches learn by
    comparing the count (``number``) rather than by listening."""

    user_id: int | None = None
    key_id: int | None = None
    session_id: str | None = None


# Called with each change heard, or with None when some were missed: forget everything.
Listener = Callable[[Change | None], None]
# Called when another process announces something (a topic such as "providers").
Announced = Callable[[], Coroutine[Any, Any, None]]


class ChangeFeed(Protocol):
    async def record(self, session: AsyncSession, change: Change) -> None:
        """Record a change in the caller's transaction; it travels once that commits."""

    def watch(self, listener: Listener) -> None:
        """Call ``listener`` with every change recorded from now on, by any process."""

    async def announce(self, topic: str) -> None:
        """Tell the other processes listening now that ``topic`` happened here."""

    def hear(self, topic: str, callback: Announced) -> None:
        """Run ``callback`` when another process announces ``topic`` (once ``watch``ing)."""

    async def close(self) -> None: ...


async def number(session: AsyncSession, change: Change, at: float) -> int:
    """Record ``change`` in the caller's transaction and return its number.

    Bumping the one counter row first makes concurrent changes take their numbers in the order
    they commit (its lock is held to the end of the transaction), so a reader that has seen
    number N can never later find a smaller one committed. The count is therefore also a
    version of everything recorded: whoever read it as N and reads N again knows that nothing
    was recorded in between (``ConversationService`` relies on that for removed messages).
    """
    bump = (
        update(ChangeCount)
        .where(ChangeCount.id == 1)
        .values(seq=ChangeCount.seq + 1)
        .returning(ChangeCount.seq)
        .execution_options(synchronize_session=False)
    )
    seq = int((await session.execute(bump)).scalar_one())
    await session.execute(
        insert(AccountChange).values(
            seq=seq,
            at=at,
            user_id=change.user_id,
            key_id=change.key_id,
            session_id=change.session_id,
        )
    )
    await session.execute(delete(AccountChange).where(AccountChange.seq <= seq - KEEP))
    return seq


class DatabaseChangeFeed:
    """Changes as numbered rows in the database, read once a second: for one machine, or
    several instances sharing one database."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], float],
        *,
        interval: float = POLL_SECONDS,
        signals: Signals | None = None,
    ) -> None:
        self._db = db
        self._now = clock
        self.interval = interval
        self.seen: int | None = None  # the number of the last change read
        self._task: asyncio.Task[None] | None = None
        self._signals = signals
        self._listening: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._origin = secrets.token_hex(8)  # this process, to ignore its own announcements
        self._topics: dict[str, list[Announced]] = {}
        self._heard: set[asyncio.Task[None]] = set()
        self.listening = asyncio.Event()
        """Set once signals are heard (``/readyz`` and tests may wait for it)."""

    async def record(self, session: AsyncSession, change: Change) -> None:
        seq = await number(session, change, self._now())
        if self._signals is not None:
            await self._signals.within(session, json.dumps({"seq": seq}))

    def watch(self, listener: Listener) -> None:
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._follow(listener))
            if self._signals is not None:
                self._listening = loop.create_task(self._signals.listen(self._signalled))

    async def announce(self, topic: str) -> None:
        if self._signals is not None:
            await self._signals.publish(json.dumps({"topic": topic, "from": self._origin}))

    def hear(self, topic: str, callback: Announced) -> None:
        self._topics.setdefault(topic, []).append(callback)

    def _signalled(self, message: str) -> None:
        try:
            body = json.loads(message) if message else {}
        except ValueError:
            return  # not one of ours
        topic = body.get("topic") if isinstance(body, dict) else None
        if not message:
            self.listening.set()
        if topic is None:  # a change committed (or listening began): read now
            if self._wake is not None:
                self._wake.set()
            return
        if body.get("from") == self._origin:
            return
        for callback in self._topics.get(str(topic), []):
            task = asyncio.get_running_loop().create_task(callback())
            self._heard.add(task)
            task.add_done_callback(self._heard.discard)

    async def close(self) -> None:
        for task in (self._listening, self._task, *self._heard):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._listening = None
        if self._signals is not None:
            await self._signals.close()

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
            await self._pause()

    async def _pause(self) -> None:
        """Until signalled, or the next reading in any case."""
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.interval)
        self._wake.clear()

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
