"""Write-behind: the request path enqueues rows without waiting; a background task writes them
in batches, one transaction per batch. ``flush()`` drains everything (on shutdown, and before a
read that must see the latest writes), so nothing enqueued is lost on a clean stop.

No single row may stop the writer. A batch the database refuses is written again with every
value bounded to its column (``store.bounds``), halving it until the refused rows stand alone;
those are set aside with a logged error and the rest is written. A database that cannot be
reached (locked, down) is different: the batch goes back in the queue and is tried again with a
growing pause, and ``health()`` says why the writer is behind, for ``/readyz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, Table, bindparam, cast, func, insert, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.store.bounds import Bounds, Unfit
from chatgate.store.db import Database
from chatgate.store.tables import Base, UsageDaily

log = logging.getLogger("chatgate.store")

UsageKey = tuple[int, int, str, str]  # user_id, key_id, model, day
UsageTotals = list[float]  # requests, errors, prompt, completion, cost

QUEUE_BOUND = 100_000
"""Writes waiting past this many make the server report itself not ready."""

_USAGE_FIELDS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost")


@dataclass(slots=True)
class _Insert:
    table: Table
    row: dict[str, Any]


@dataclass(slots=True)
class _Update:
    table: Table
    where: dict[str, Any]
    values: dict[str, Any]


@dataclass(slots=True)
class _Usage:
    key: UsageKey
    totals: UsageTotals
    bounded: bool = False
    """Written with sums that stop at the columns' largest value instead of overflowing."""


Op = _Insert | _Update | _Usage


class Amendable:
    """A write behind that may still change (a request's log row, written when the request
    starts and completed when it ends): changed in place while it waits in the queue, by an
    update of the same row once it has gone out. A quick request then costs one write."""

    __slots__ = ("_table", "_where", "_writer", "queued", "values")

    def __init__(
        self,
        writer: BatchWriter,
        table: Table,
        values: dict[str, Any],
        where: dict[str, Any] | tuple[str, ...],
    ):
        self._writer = writer
        self._table = table
        self._where = where
        self.values = values
        self.queued = True

    def amend(self, values: dict[str, Any]) -> None:
        if self.queued:
            self.values.update(values)
            return
        where = self._where
        if isinstance(where, tuple):  # an insert: its row is found by these columns
            where = {name: self.values[name] for name in where}
        self._writer._ops.append(_Update(self._table, where, values))
        self._writer.enqueued += 1
        self._writer._nudge()


@dataclass(slots=True)
class WriterStats:
    """What ``/metrics`` reports of the writer."""

    written: int = 0
    set_aside: int = 0
    flush_failures: int = 0
    failing_since: float | None = None
    last_error: str | None = None


@dataclass(slots=True)
class _Backoff:
    """The pause before trying a database that failed again: doubles up to ``ceiling``."""

    first: float
    ceiling: float = 30.0
    current: float = field(default=0.0)

    def next(self) -> float:
        self.current = min(self.ceiling, self.current * 2 if self.current else self.first)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


class BatchWriter:
    def __init__(self, db: Database, interval: float = 0.5, max_batch: int = 1000) -> None:
        self._db = db
        self._interval = interval
        self._max_batch = max_batch
        self._ops: list[Op] = []
        self._usage: dict[UsageKey, UsageTotals] = {}
        self._amendable: list[Amendable] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._in_hand = 0
        self._bounds = Bounds(db.is_sqlite)
        self._backoff = _Backoff(max(interval, 0.05))
        self.stats = WriterStats()
        self.enqueued = 0
        """Writes enqueued so far (inserts and updates): a ticket for the newest of them."""
        self.settled = 0
        """The enqueued writes that are done with (written, or set aside as the database refused
        them) are those numbered up to this: ``enqueued`` taken after a write is settled once
        ``settled`` reaches it. Writes go out in the order they came (a batch that failed is put
        back in front), so one number says it. A cache that answers before the database does
        (``ConversationService``) knows from it whether the database has caught up with it."""
        self._taking = 0

    # ---- enqueue (never awaits; safe in finally blocks of cancelled streams) ----------------

    def insert(self, model: type[Base], row: dict[str, Any]) -> None:
        self._ops.append(_Insert(_table(model), row))
        self.enqueued += 1
        self._nudge()

    def insert_amendable(
        self, model: type[Base], row: dict[str, Any], key: tuple[str, ...]
    ) -> Amendable:
        """Insert ``row`` and keep a handle to change it later; ``key`` names the columns that
        find it again in the database (their values must not change)."""
        table = _table(model)
        handle = Amendable(self, table, row, key)
        self._ops.append(_Insert(table, row))
        self.enqueued += 1
        self._amendable.append(handle)
        self._nudge()
        return handle

    def update(self, model: type[Base], where: dict[str, Any], values: dict[str, Any]) -> None:
        self._ops.append(_Update(_table(model), where, values))
        self.enqueued += 1
        self._nudge()

    def update_amendable(
        self, model: type[Base], where: dict[str, Any], values: dict[str, Any]
    ) -> Amendable:
        """Update the rows ``where`` says and keep a handle to change the values later."""
        table = _table(model)
        handle = Amendable(self, table, values, where)
        self._ops.append(_Update(table, where, values))
        self.enqueued += 1
        self._amendable.append(handle)
        self._nudge()
        return handle

    def add_usage(
        self,
        key: UsageKey,
        *,
        requests: int,
        errors: int,
        prompt_tokens: int,
        completion_tokens: int,
        cost: float,
    ) -> None:
        totals = self._usage.setdefault(key, [0, 0, 0, 0, 0.0])
        try:
            totals[0] += requests
            totals[1] += errors
            totals[2] += prompt_tokens
            totals[3] += completion_tokens
            totals[4] += cost
        except TypeError:  # a count that is not a number: the books keep what they had
            self.stats.set_aside += 1
            log.error("set aside usage for model %r that was not a number", key[2][:128])
            for i, kind in enumerate((int, int, int, int, float)):
                if not isinstance(totals[i], int | float):
                    totals[i] = kind()
        self._nudge()

    @property
    def pending(self) -> int:
        """Writes not yet in the database, the batch being written included."""
        return len(self._ops) + len(self._usage) + self._in_hand

    def _nudge(self) -> None:
        if len(self._ops) >= self._max_batch:
            self._wake.set()

    # ---- health -----------------------------------------------------------------------------

    def health(self) -> str | None:
        """Why the writer is behind (failing, or too much waiting), or None when it keeps up."""
        stats = self.stats
        if stats.failing_since is not None:
            since = time.monotonic() - stats.failing_since
            return f"database writes have failed for {since:.0f} s ({stats.last_error})"
        if self.pending > QUEUE_BOUND:
            return f"{self.pending} database writes are waiting (more than {QUEUE_BOUND})"
        return None

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="chatgate-writer")

    async def stop(self, patience: float = 10.0) -> None:
        """Stop the background task and write what is left, trying a failing database again
        for up to ``patience`` seconds before giving up (and saying how much was lost)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        deadline = time.monotonic() + patience
        pause = _Backoff(0.1, ceiling=2.0)
        while True:
            try:
                await self.flush()
                return
            except Exception:
                wait = pause.next()
                if time.monotonic() + wait > deadline:
                    log.error("stopping with %d database writes not written", self.pending)
                    return
                await asyncio.sleep(wait)

    async def _run(self) -> None:
        while True:
            if self.stats.failing_since is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval)
            else:  # a failing database is not tried again sooner because the queue is long
                await asyncio.sleep(self._backoff.next())
            self._wake.clear()
            with contextlib.suppress(Exception):  # flush has logged it and keeps the queue
                await self.flush()

    async def flush(self) -> None:
        """Write everything enqueued so far. A database that cannot be reached keeps the batch
        in the queue (and the error is raised); a row it refuses is set aside."""
        async with self._lock:
            if not self._ops and not self._usage:
                self.settled = self.enqueued  # nothing waits, and nothing is being written
                return
            ops = self._take()
            self._in_hand = len(ops)
            try:
                await self._write(ops)
            except BaseException as exc:
                if not isinstance(exc, Exception) or unreachable(exc):
                    self._put_back(ops)
                    self._failed(exc)
                    raise
                try:
                    await self._salvage(ops)  # puts back what it could not write
                except BaseException as again:
                    self._failed(again)
                    raise
            finally:
                self._in_hand = 0
            self.settled = self._taking
            self._succeeded()

    def _take(self) -> list[Op]:
        ops: list[Op] = self._ops
        ops.extend(_Usage(k, t) for k, t in self._usage.items())
        for handle in self._amendable:
            handle.queued = False
        self._ops, self._usage, self._amendable = [], {}, []
        self._taking = self.enqueued
        return ops

    def _put_back(self, ops: Sequence[Op]) -> None:
        kept: list[Op] = [op for op in ops if not isinstance(op, _Usage)]
        self._ops = kept + self._ops
        for op in ops:
            if isinstance(op, _Usage):
                mine = self._usage.setdefault(op.key, [0, 0, 0, 0, 0.0])
                for i, value in enumerate(op.totals):
                    mine[i] += value

    def _failed(self, exc: BaseException) -> None:
        if not isinstance(exc, Exception):
            return  # cancelled: not the database's fault
        stats = self.stats
        stats.flush_failures += 1
        stats.last_error = describe(exc)
        if stats.failing_since is None:
            stats.failing_since = time.monotonic()
            log.error("database writes are failing (%s); retrying", stats.last_error)

    def _succeeded(self) -> None:
        if self.stats.failing_since is not None:
            log.info("database writes are succeeding again")
        self.stats.failing_since = None
        self._backoff.reset()

    async def _salvage(self, ops: list[Op]) -> None:
        """Write a refused batch with its values bounded, halving it around the rows the
        database still refuses; those are set aside. An unreachable database puts back what
        was not yet written and raises."""
        bounded: list[Op] = []
        for op in ops:
            try:
                bounded.append(self._bounded(op))
            except Unfit as exc:
                self._set_aside(op, str(exc))
        spans = [(0, len(bounded))]
        while spans:
            start, end = spans.pop()
            try:
                await self._write(bounded[start:end])
            except BaseException as exc:
                if not isinstance(exc, Exception) or unreachable(exc):
                    self._put_back(bounded[start:])
                    raise
                if end - start == 1:
                    self._set_aside(bounded[start], describe(exc))
                else:
                    middle = (start + end) // 2
                    spans += [(middle, end), (start, middle)]  # the first half goes first

    def _bounded(self, op: Op) -> Op:
        fit = self._bounds.fit
        if isinstance(op, _Insert):
            return _Insert(op.table, fit(op.table, op.row))
        if isinstance(op, _Update):
            return _Update(op.table, op.where, fit(op.table, op.values, partial=True))
        # a count that is not a finite number must not lose the others
        totals = [v if isinstance(v, int) or math.isfinite(v) else 0 for v in op.totals]
        row = fit(_table(UsageDaily), _usage_row(op.key, totals))
        return _Usage(
            (row["user_id"], row["key_id"], row["model"], row["day"]),
            [row[name] for name in _USAGE_FIELDS],
            bounded=True,
        )

    def _set_aside(self, op: Op, why: str) -> None:
        """Log a write the database refuses, naming the table and the reason, never the values
        (a message's text is the user's business; a row may hold anything)."""
        self.stats.set_aside += 1
        table = _table(UsageDaily).name if isinstance(op, _Usage) else op.table.name
        log.error("set aside one write to %s that the database refused (%s)", table, why)

    # ---- writing ----------------------------------------------------------------------------

    async def _write(self, ops: list[Op]) -> None:
        """Everything in ``ops``, in order, in one transaction."""
        if not ops:
            return
        async with self._db.session() as session, session.begin():
            await self._write_ops(session, ops)
        self.stats.written += len(ops)

    async def _write_ops(self, session: AsyncSession, ops: list[Op]) -> None:
        i = 0
        while i < len(ops):
            op = ops[i]
            j = i + 1
            while j < len(ops) and _same_kind(ops[j], op):
                j += 1
            if isinstance(op, _Insert):
                rows = [o.row for o in ops[i:j] if isinstance(o, _Insert)]
                await session.execute(insert(op.table), rows)
            elif isinstance(op, _Update):
                await session.execute(_update_of(op), [_update_params(u) for u in ops[i:j]])
            else:
                await self._write_usage(session, ops[i:j])
            i = j

    async def _write_usage(self, session: AsyncSession, ops: list[Op]) -> None:
        table = _table(UsageDaily)
        rows = [_usage_row(op.key, op.totals) for op in ops if isinstance(op, _Usage)]
        dialect = self._db.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects import postgresql  # loaded only where it is used

            ins: Any = postgresql.insert(table)
        else:
            ins = sqlite.insert(table)
        sums = {name: table.c[name] + ins.excluded[name] for name in _USAGE_FIELDS}
        if any(isinstance(op, _Usage) and op.bounded for op in ops):
            sums = self._saturating(table, ins, dialect)
        stmt = ins.on_conflict_do_update(
            index_elements=["user_id", "key_id", "model", "day"], set_=sums
        )
        await session.execute(stmt, rows)

    def _saturating(self, table: Table, ins: Any, dialect: str) -> dict[str, Any]:
        """Sums that stop at the largest integer a column holds (a day's tokens that would
        overflow it), for a batch the database refused."""
        limit = self._bounds.largest(table.c.prompt_tokens)
        least = func.least if dialect == "postgresql" else func.min
        sums: dict[str, Any] = {"cost": table.c.cost + ins.excluded.cost}
        for name in _USAGE_FIELDS[:4]:
            total = cast(table.c[name], BigInteger) + ins.excluded[name]
            sums[name] = least(total, limit)
        return sums


def _usage_row(key: UsageKey, totals: UsageTotals) -> dict[str, Any]:
    return {
        "user_id": key[0],
        "key_id": key[1],
        "model": key[2],
        "day": key[3],
        "requests": int(totals[0]),
        "errors": int(totals[1]),
        "prompt_tokens": int(totals[2]),
        "completion_tokens": int(totals[3]),
        "cost": float(totals[4]),
    }


def unreachable(exc: BaseException) -> bool:
    """A failure of the database rather than of the rows: locked, down, or its connection
    lost. Any other error is blamed on the rows, so that no row can stop the writer."""
    if isinstance(exc, OperationalError | OSError | TimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def describe(exc: BaseException) -> str:
    """The kind of error and, for the database's own errors, its first line: never the
    statement's parameters, which SQLAlchemy puts in its message."""
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        first = str(orig).splitlines()[0][:200] if str(orig) else ""
        return f"{type(orig).__name__}: {first}" if first else type(orig).__name__
    if isinstance(exc, Unfit):
        return str(exc)
    return type(exc).__name__


def _same_kind(op: Op, first: Op) -> bool:
    """Consecutive writes that go out as one executemany: inserts of one shape, updates of
    one shape (a key's ``last_used_at``, say), usage totals."""
    if isinstance(first, _Insert):
        return (
            isinstance(op, _Insert)
            and op.table is first.table
            and op.row.keys() == first.row.keys()  # an executemany takes the first row's columns
        )
    if isinstance(first, _Update):
        return (
            isinstance(op, _Update)
            and op.table is first.table
            and op.where.keys() == first.where.keys()
            and op.values.keys() == first.values.keys()
        )
    return isinstance(op, _Usage)


def _update_of(op: _Update) -> Any:
    stmt = update(op.table).values({c: bindparam(f"v_{c}") for c in op.values})
    for column in op.where:
        stmt = stmt.where(op.table.c[column] == bindparam(f"w_{column}"))
    return stmt


def _update_params(op: Op) -> dict[str, Any]:
    assert isinstance(op, _Update)
    params = {f"w_{k}": v for k, v in op.where.items()}
    params.update({f"v_{k}": v for k, v in op.values.items()})
    return params


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table
