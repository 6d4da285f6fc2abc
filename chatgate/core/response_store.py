"""What the Responses API keeps beyond the conversation tree.

``ResponseRecords`` is the part that lasts: the tree keeps a reply's text, and a stored
response also has the request it repeats (instructions, metadata, tools…) and its function
calls. Those are written behind with the reply, into the ``responses`` table, so a chained
``function_call_output`` finds its call after a restart, and recent ones are kept in memory.

``Runs`` is the part that does not: the numbered events of responses running now or a short
while ago, so a client can resume a stream (``starting_after``) and follow it live, and so a
``background`` response runs detached from the connection that asked for it.

Where others may serve the same responses (PostgreSQL, or Redis configured: several instances
or ``serve --workers``), a response deleted through one process must be gone on all of them at
once, as conversations are (``core.conversations`` says why a message sent to the others would
come too late). What each process keeps is made exact this way:

- A record is written once, with its reply, under the reply's id, which never comes back, and
  it leaves only with that reply (the row cascades with its message). So the only way a cached
  record can be wrong is by being there when its row is not, and the cheapest exact check is
  that row's existence: one read by primary key at each use of a cached record (the process's
  own writes still waiting are flushed first, when the writer's tickets say there are some, so
  a record kept here a moment ago is found). A version or a recorded change would cost the same
  read and add a write to every deletion, for nothing a record could tell apart.
- A finished run is the stored response by then, and is answered from memory (its events as
  they were numbered, for a stream resumed where it stopped) only once its reply's row is read
  (``ResponseState.run``, one read by primary key, after flushing this process's own waiting
  writes: a reply stopped early is written behind). The reply is what a deletion takes out, in
  its own transaction, and its id never comes back, so its row being there is exact. A run
  still going is answered as it is: its reply is not in the database before it ends, so no
  other process can find it to delete it. ``Runs.get``, which cannot read, answers only a run
  still going where others may share responses; a finished one is then read as any other
  process reads it, through the conversation that holds it (checked at each use,
  ``core.conversations``).

A single process on SQLite without Redis is alone with its database and keeps answering from
memory. A database that cannot be reached is not compared with: the cache answers meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select

from chatgate.core.clock import Clock
from chatgate.core.responses import message_id_of
from chatgate.store.db import Database
from chatgate.store.tables import StoredMessage, StoredResponse
from chatgate.store.writer import BatchWriter, describe, unreachable

log = logging.getLogger("chatgate.responses")

TERMINAL = frozenset(("response.completed", "response.incomplete", "response.failed"))


class ResponseRecords:
    """A stored response's echoed request and calls, by its reply message id."""

    def __init__(
        self,
        db: Database,
        writer: BatchWriter,
        clock: Clock,
        size: int = 10_000,
        shared: bool = False,
    ) -> None:
        self._db = db
        self._writer = writer
        self._clock = clock
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._tickets: dict[str, int] = {}
        """The writer's ticket of each record kept here and maybe not written yet."""
        self._size = size
        self.shared = shared
        """Other processes may delete these responses: a cached record's row is read at each
        use (the module's docstring says why that one read is exact)."""
        self._check_failing = False

    def keep(self, message_id: str, data: dict[str, Any]) -> None:
        """Written behind, after the reply message it belongs to (the writer keeps order)."""
        self._remember(message_id, data)
        row = {"id": message_id, "data": orjson.dumps(data).decode(), "created_at": self._now()}
        self._writer.insert(StoredResponse, row)
        if self.shared:
            self._tickets[message_id] = self._writer.enqueued

    async def get(self, message_id: str) -> dict[str, Any] | None:
        found = self._cache.get(message_id)
        if found is not None:
            self._cache.move_to_end(message_id)
            if self.shared:
                return await self._checked(message_id, found)
            return found
        await self._writer.flush()
        async with self._db.session() as session:
            row = await session.get(StoredResponse, message_id)
        if row is None:
            return None
        data: dict[str, Any] = orjson.loads(row.data)
        self._remember(message_id, data)
        return data

    async def _checked(self, message_id: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """The cached record while its row is stored; None once it is gone (deleted through
        any process). One read by primary key."""
        try:
            ticket = self._tickets.get(message_id, 0)
            if ticket > self._writer.settled:
                await self._writer.flush()  # kept here a moment ago: written before it is read
            self._tickets.pop(message_id, None)
            async with self._db.session() as session:
                stored = await session.scalar(
                    select(StoredResponse.id).where(StoredResponse.id == message_id)
                )
        except Exception as exc:
            if not unreachable(exc):
                raise
            if not self._check_failing:
                log.warning("cannot check cached responses with the database (%s)", describe(exc))
            self._check_failing = True
            return data
        if self._check_failing:
            log.info("cached responses are checked with the database again")
            self._check_failing = False
        if stored is None:
            self.forget(message_id)
            return None
        return data

    def forget(self, message_id: str) -> None:
        """The row itself goes with its message (a cascade)."""
        self._cache.pop(message_id, None)
        self._tickets.pop(message_id, None)

    def _remember(self, message_id: str, data: dict[str, Any]) -> None:
        self._cache[message_id] = data
        self._cache.move_to_end(message_id)
        while len(self._cache) > self._size:
            gone, _ = self._cache.popitem(last=False)
            self._tickets.pop(gone, None)

    def _now(self) -> float:
        return self._clock.now()


@dataclass(slots=True)
class Run:
    """One response's events as they are made, for followers to read from any point."""

    resp_id: str
    user_id: int
    response: dict[str, Any]
    background: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    finished_at: float | None = None
    task: asyncio.Task[None] | None = None
    current: Callable[[], dict[str, Any]] | None = None
    """The response as it stands while it runs (its text so far)."""
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def now(self) -> dict[str, Any]:
        """What a retrieve answers: the response as it stands, or as it ended."""
        if self.finished or self.current is None:
            return self.response
        return self.current()

    def add(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.events.append(event)
            if "response" in event:
                self.response = event["response"]
            if event["type"] in TERMINAL:
                self.finished_at = time.monotonic()
        self._wake()

    def end(self, response: dict[str, Any]) -> None:
        """The run stops without a last event (cancelled, or its client left)."""
        self.response = response
        if self.finished_at is None:
            self.finished_at = time.monotonic()
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self, after: int) -> AsyncGenerator[dict[str, Any], None]:
        """The events numbered after ``after``, then each new one until the run ends.

        An event's ``sequence_number`` is its place in ``events``."""
        index = after + 1
        while True:
            while index < len(self.events):
                yield self.events[index]
                index += 1
            if self.finished:
                return
            await self._changed.wait()


class Runs:
    """Runs by response id: running ones, and finished ones for ``keep_seconds``."""

    def __init__(
        self,
        keep_seconds: float = 600.0,
        size: int = 256,
        clock: Callable[[], float] = time.monotonic,
        shared: bool = False,
    ) -> None:
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._keep = keep_seconds
        self._size = size
        self._clock = clock
        self.shared = shared
        """Other processes may delete these responses: a finished run is not answered, the
        stored response is (the module's docstring says why)."""

    def start(self, run: Run) -> Run:
        self._prune()
        self._runs[run.resp_id] = run
        return run

    def get(self, resp_id: str) -> Run | None:
        """The run of ``resp_id``, answered without the database: where others may share
        responses, only while it runs (``ResponseState.run`` checks a finished one)."""
        run = self.find(resp_id)
        if run is not None and self.shared and run.finished:
            return None
        return run

    def find(self, resp_id: str) -> Run | None:
        """The run of ``resp_id``, running or finished, as this process holds it."""
        self._prune()
        return self._runs.get(resp_id)

    def drop(self, resp_id: str) -> None:
        self._runs.pop(resp_id, None)

    def _prune(self) -> None:
        """Finished runs past their time go, and the oldest finished ones past ``size``; a
        running one stays (its events are what a follower is reading)."""
        now = self._clock()
        for resp_id, run in list(self._runs.items()):
            old = run.finished_at is not None and now - run.finished_at > self._keep
            if old or (len(self._runs) > self._size and run.finished):
                del self._runs[resp_id]

    async def close(self) -> None:
        """Stop the background responses still running; each keeps what it had."""
        tasks = [run.task for run in self._runs.values() if run.task and not run.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class ResponseState:
    """The Responses API's records and runs, one per server."""

    def __init__(
        self, db: Database, writer: BatchWriter, clock: Clock, shared: bool | None = None
    ) -> None:
        """``shared``: other processes may serve the same responses (as for conversations:
        PostgreSQL, or Redis configured); by default, a database other than SQLite."""
        shared = not db.is_sqlite if shared is None else shared
        self._db = db
        self._writer = writer
        self.shared = shared
        self.records = ResponseRecords(db, writer, clock, shared=shared)
        self.runs = Runs(shared=shared)

    async def run(self, resp_id: str) -> Run | None:
        """The run of ``resp_id``; a finished one only while its reply is stored, where others
        may share responses (one read by primary key: the module's docstring says why)."""
        run = self.runs.find(resp_id)
        if run is None or not run.finished or not self.shared:
            return run
        try:
            if self._writer.enqueued > self._writer.settled:
                await self._writer.flush()  # a reply stopped early is written behind
            async with self._db.session() as session:
                stored = await session.scalar(
                    select(StoredMessage.id).where(StoredMessage.id == message_id_of(resp_id))
                )
        except Exception as exc:
            if not unreachable(exc):
                raise
            log.warning("cannot check a finished response with the database (%s)", describe(exc))
            return run
        if stored is None:  # deleted through any process, or never stored (failed at once)
            self.runs.drop(resp_id)
            self.records.forget(message_id_of(resp_id))
            return None
        return run

    async def close(self) -> None:
        await self.runs.close()
