"""What the Responses API keeps beyond the conversation tree.

``ResponseRecords`` is the part that lasts: the tree keeps a reply's text, and a stored
response also has the request it repeats (instructions, metadata, tools…) and its function
calls. Those are written behind with the reply, into the ``responses`` table, so a chained
``function_call_output`` finds its call after a restart, and recent ones are kept in memory.

``Runs`` is the part that does not: the numbered events of responses running now or a short
while ago, so a client can resume a stream (``starting_after``) and follow it live, and so a
``background`` response runs detached from the connection that asked for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from chatgate.core.clock import Clock
from chatgate.store.db import Database
from chatgate.store.tables import StoredResponse
from chatgate.store.writer import BatchWriter

TERMINAL = frozenset(("response.completed", "response.incomplete", "response.failed"))


class ResponseRecords:
    """A stored response's echoed request and calls, by its reply message id."""

    def __init__(self, db: Database, writer: BatchWriter, clock: Clock, size: int = 10_000) -> None:
        self._db = db
        self._writer = writer
        self._clock = clock
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._size = size

    def keep(self, message_id: str, data: dict[str, Any]) -> None:
        """Written behind, after the reply message it belongs to (the writer keeps order)."""
        self._remember(message_id, data)
        row = {"id": message_id, "data": orjson.dumps(data).decode(), "created_at": self._now()}
        self._writer.insert(StoredResponse, row)

    async def get(self, message_id: str) -> dict[str, Any] | None:
        found = self._cache.get(message_id)
        if found is not None:
            return found
        await self._writer.flush()
        async with self._db.session() as session:
            row = await session.get(StoredResponse, message_id)
        if row is None:
            return None
        data: dict[str, Any] = orjson.loads(row.data)
        self._remember(message_id, data)
        return data

    def forget(self, message_id: str) -> None:
        """The row itself goes with its message (a cascade)."""
        self._cache.pop(message_id, None)

    def _remember(self, message_id: str, data: dict[str, Any]) -> None:
        self._cache[message_id] = data
        self._cache.move_to_end(message_id)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)

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
    ) -> None:
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._keep = keep_seconds
        self._size = size
        self._clock = clock

    def start(self, run: Run) -> Run:
        self._prune()
        self._runs[run.resp_id] = run
        return run

    def get(self, resp_id: str) -> Run | None:
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

    def __init__(self, db: Database, writer: BatchWriter, clock: Clock) -> None:
        self.records = ResponseRecords(db, writer, clock)
        self.runs = Runs()

    async def close(self) -> None:
        await self.runs.close()
