"""Write-behind: the request path enqueues rows without waiting; a background task writes them
in batches, one transaction per batch. ``flush()`` drains everything (on shutdown, and before a
read that must see the latest writes), so nothing enqueued is lost on a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.store.db import Database
from chatgate.store.tables import Base, UsageDaily

log = logging.getLogger("chatgate.store")

UsageKey = tuple[int, int, str, str]  # user_id, key_id, model, day
UsageTotals = list[float]  # requests, errors, prompt, completion, cost


@dataclass(slots=True)
class _Insert:
    table: Table
    row: dict[str, Any]


@dataclass(slots=True)
class _Update:
    table: Table
    where: dict[str, Any]
    values: dict[str, Any]


Op = _Insert | _Update


class BatchWriter:
    def __init__(self, db: Database, interval: float = 0.5, max_batch: int = 1000) -> None:
        self._db = db
        self._interval = interval
        self._max_batch = max_batch
        self._ops: list[Op] = []
        self._usage: dict[UsageKey, UsageTotals] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # ---- enqueue (never awaits; safe in finally blocks of cancelled streams) ----------------

    def insert(self, model: type[Base], row: dict[str, Any]) -> None:
        self._ops.append(_Insert(_table(model), row))
        self._nudge()

    def update(self, model: type[Base], where: dict[str, Any], values: dict[str, Any]) -> None:
        self._ops.append(_Update(_table(model), where, values))
        self._nudge()

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
        totals[0] += requests
        totals[1] += errors
        totals[2] += prompt_tokens
        totals[3] += completion_tokens
        totals[4] += cost
        self._nudge()

    @property
    def pending(self) -> int:
        return len(self._ops) + len(self._usage)

    def _nudge(self) -> None:
        if len(self._ops) >= self._max_batch:
            self._wake.set()

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="chatgate-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("write-behind flush failed; the batch will be retried")

    async def flush(self) -> None:
        """Write everything enqueued so far. On failure the batch is put back, not dropped."""
        async with self._lock:
            if not self._ops and not self._usage:
                return
            ops, usage = self._ops, self._usage
            self._ops, self._usage = [], {}
            try:
                async with self._db.session() as session, session.begin():
                    await self._write_ops(session, ops)
                    await self._write_usage(session, usage)
            except (IntegrityError, DataError):
                await self._salvage(ops, usage)
            except BaseException:
                self._put_back(ops, usage)
                raise

    def _put_back(self, ops: list[Op], usage: dict[UsageKey, UsageTotals]) -> None:
        self._ops = ops + self._ops
        for key, totals in usage.items():
            mine = self._usage.setdefault(key, [0, 0, 0, 0, 0.0])
            for i, value in enumerate(totals):
                mine[i] += value

    async def _salvage(self, ops: list[Op], usage: dict[UsageKey, UsageTotals]) -> None:
        """A batch with a row the database refuses: write the rest one by one, drop that row.

        Without this one bad row (say, a reply to a conversation another instance deleted)
        would hold back every later write, usage included.
        """
        async with self._db.session() as session, session.begin():
            await self._write_usage(session, usage)
        for n, op in enumerate(ops):
            try:
                async with self._db.session() as session, session.begin():
                    await self._write_ops(session, [op])
            except (IntegrityError, DataError) as exc:
                log.error(
                    "dropped one write to %s that the database refused (%s)",
                    op.table.name,
                    type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__,
                )
            except BaseException:
                self._put_back(ops[n:], {})
                raise

    async def _write_ops(self, session: AsyncSession, ops: list[Op]) -> None:
        i = 0
        while i < len(ops):
            op = ops[i]
            if isinstance(op, _Insert):
                rows = [op.row]
                j = i + 1
                while j < len(ops):
                    nxt = ops[j]
                    if not isinstance(nxt, _Insert) or nxt.table is not op.table:
                        break
                    rows.append(nxt.row)
                    j += 1
                await session.execute(insert(op.table), rows)
                i = j
            else:
                j = i + 1
                while j < len(ops) and _same_update(ops[j], op):
                    j += 1
                await session.execute(_update_of(op), [_update_params(u) for u in ops[i:j]])
                i = j

    async def _write_usage(self, session: AsyncSession, usage: dict[UsageKey, UsageTotals]) -> None:
        if not usage:
            return
        table = _table(UsageDaily)
        rows = [
            {
                "user_id": k[0],
                "key_id": k[1],
                "model": k[2],
                "day": k[3],
                "requests": int(t[0]),
                "errors": int(t[1]),
                "prompt_tokens": int(t[2]),
                "completion_tokens": int(t[3]),
                "cost": float(t[4]),
            }
            for k, t in usage.items()
        ]
        dialect = self._db.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects import postgresql  # loaded only where it is used

            ins: Any = postgresql.insert(table)
        else:
            ins = sqlite.insert(table)
        stmt = ins.on_conflict_do_update(
            index_elements=["user_id", "key_id", "model", "day"],
            set_={
                name: table.c[name] + ins.excluded[name]
                for name in ("requests", "errors", "prompt_tokens", "completion_tokens", "cost")
            },
        )
        await session.execute(stmt, rows)


def _same_update(op: Op, first: _Update) -> bool:
    """Updates of one shape (a key's ``last_used_at``, say) go out as one executemany."""
    return (
        isinstance(op, _Update)
        and op.table is first.table
        and op.where.keys() == first.where.keys()
        and op.values.keys() == first.values.keys()
    )


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
