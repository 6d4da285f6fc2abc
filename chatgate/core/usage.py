"""Usage accounting: one request-log row and the daily totals, both written behind; and the
reports read back from those totals (per user, key, model and day)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from chatgate.core.accounts import Principal
from chatgate.core.clock import Clock
from chatgate.core.errors import InvalidRequest
from chatgate.core.events import Usage
from chatgate.store.db import Database
from chatgate.store.tables import ApiKey, RequestLog, UsageDaily, User
from chatgate.store.writer import Amendable, BatchWriter, UsageKey


@dataclass(slots=True)
class Outcome:
    """How a request ended, for the books."""

    model: str
    provider: str | None
    status: str  # ok | error | cancelled (in_flight until then; interrupted after a crash)
    usage: Usage
    counted: bool
    latency_ms: float
    first_token_ms: float | None = None
    error_code: str | None = None
    finish_reason: str | None = None
    cost: float = 0.0


IN_FLIGHT = "in_flight"
"""The status of a request's log row from its reservation until it settles."""
INTERRUPTED = "interrupted"
"""The status ``usage reconcile`` gives a row a crash left in flight."""
REFUSED = "refused"
"""The status of a request a limit refused (a 429) before anything was reserved."""


@dataclass(slots=True)
class Entry:
    """A request's place in the books, from its reservation until it settles."""

    row: Amendable
    key: UsageKey


class UsageRecorder:
    """The books of each request, written behind in two steps so that a crash cannot lose a
    reservation: when it is taken, a request-log row "in flight" and one counted request on the
    day's totals; when it settles, the row is completed (in place, when it has not been written
    yet) and the totals corrected (a request that does not count gives its request back)."""

    def __init__(self, writer: BatchWriter, clock: Clock) -> None:
        self._writer = writer
        self._clock = clock
        self._last = 0.0

    def begin(self, principal: Principal, model: str, day: str) -> Entry:
        """Book a reserved request on ``day`` (the reservation's day, where it settles too)."""
        key_id = principal.key_id or 0
        # The start time finds the row again, with the user: kept unique in this process.
        now = self._clock.now()
        self._last = now = now if now > self._last else math.nextafter(self._last, math.inf)
        row = self._writer.insert_amendable(
            RequestLog,
            {
                "created_at": now,
                "user_id": principal.user_id,
                "key_id": key_id,
                "model": model,
                "provider": None,
                "status": IN_FLIGHT,
                "error_code": None,
                "finish_reason": None,
                "counted": True,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost": 0.0,
                "latency_ms": 0.0,
                "first_token_ms": None,
            },
            key=("user_id", "created_at"),
        )
        key = (principal.user_id, key_id, model, day)
        self._writer.add_usage(
            key, requests=1, errors=0, prompt_tokens=0, completion_tokens=0, cost=0.0
        )
        return Entry(row, key)

    def refused(self, principal: Principal, model: str, code: str) -> None:
        """Log a request a limit refused (a 429), so that refusals can be counted per day;
        nothing was reserved, so the day's totals do not change."""
        self._writer.insert(
            RequestLog,
            {
                "created_at": self._clock.now(),
                "user_id": principal.user_id,
                "key_id": principal.key_id or 0,
                "model": model,
                "provider": None,
                "status": REFUSED,
                "error_code": code,
                "finish_reason": None,
                "counted": False,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost": 0.0,
                "latency_ms": 0.0,
                "first_token_ms": None,
            },
        )

    def record(self, entry: Entry, outcome: Outcome) -> None:
        """Settle a request's books with how it ended."""
        usage = outcome.usage
        entry.row.amend(
            {
                "provider": outcome.provider,
                "status": outcome.status,
                "error_code": outcome.error_code,
                "finish_reason": outcome.finish_reason,
                "counted": outcome.counted,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cost": outcome.cost,
                "latency_ms": outcome.latency_ms,
                "first_token_ms": outcome.first_token_ms,
            }
        )
        self._writer.add_usage(
            entry.key,
            requests=0 if outcome.counted else -1,
            errors=0 if outcome.status in ("ok", "cancelled") else 1,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost=outcome.cost,
        )


@dataclass(slots=True)
class UsageRow:
    """Totals for one group; the grouping fields not asked for are ``None``."""

    day: str | None
    user: str | None
    key_id: int | None
    key_prefix: str | None
    model: str | None
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost: float

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


GROUPS = ("day", "user", "key", "model")


class UsageQueries:
    """Reading the books: usage reports, and the day's totals that seed quota counters."""

    def __init__(self, db: Database, writer: BatchWriter, clock: Clock) -> None:
        self._db = db
        self._writer = writer
        self._clock = clock

    async def counted(self, scope: str, day: str) -> tuple[int, int]:
        """Counted requests and tokens of a scope (``u:ID`` or ``k:ID``) on a day."""
        kind, _, ident = scope.partition(":")
        column = UsageDaily.user_id if kind == "u" else UsageDaily.key_id
        await self._writer.flush()
        stmt = select(
            func.coalesce(func.sum(UsageDaily.requests), 0),
            func.coalesce(func.sum(UsageDaily.prompt_tokens + UsageDaily.completion_tokens), 0),
        ).where(column == int(ident), UsageDaily.day == day)
        async with self._db.session() as session:
            requests, tokens = (await session.execute(stmt)).one()
        return int(requests), int(tokens)

    async def reconcile(self, older_than: float) -> int:
        """Settle the log rows a crash left in flight (started more than ``older_than`` seconds
        ago, so that live requests keep theirs): they become ``interrupted``. They stay counted,
        as the day's totals already count them from their reservation. Returns how many."""
        await self._writer.flush()
        stmt = (
            update(RequestLog)
            .where(
                RequestLog.status == IN_FLIGHT,
                RequestLog.created_at < self._clock.now() - older_than,
            )
            .values(status=INTERRUPTED, counted=True)
        )
        async with self._db.session() as session, session.begin():
            result = await session.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)

    def days_back(self, days: int) -> tuple[str, str]:
        """The first and last day of the last ``days`` days, today included."""
        today = self._clock.local().date()
        return (today - timedelta(days=max(1, days) - 1)).isoformat(), today.isoformat()

    async def report(
        self,
        *,
        start: str,
        end: str,
        user_id: int | None = None,
        group_by: Sequence[str] = ("day", "model", "key"),
    ) -> list[UsageRow]:
        """Totals from ``start`` to ``end`` (ISO days, both included), grouped as asked."""
        unknown = set(group_by) - set(GROUPS)
        if unknown:
            raise InvalidRequest(
                f"group_by takes {', '.join(GROUPS)}; not {', '.join(sorted(unknown))}",
                param="group_by",
            )
        columns: dict[str, Any] = {
            "day": UsageDaily.day,
            "user": User.name,
            "key": UsageDaily.key_id,
            "model": UsageDaily.model,
        }
        chosen = [name for name in GROUPS if name in group_by]
        keys = [columns[name] for name in chosen]
        if "key" in chosen:
            keys.append(ApiKey.prefix)
        stmt = (
            select(
                *keys,
                func.sum(UsageDaily.requests),
                func.sum(UsageDaily.errors),
                func.sum(UsageDaily.prompt_tokens),
                func.sum(UsageDaily.completion_tokens),
                func.sum(UsageDaily.cost),
            )
            .select_from(UsageDaily)
            .join(User, User.id == UsageDaily.user_id)
            .outerjoin(ApiKey, ApiKey.id == UsageDaily.key_id)
            .where(UsageDaily.day >= start, UsageDaily.day <= end)
            .group_by(*keys)
            .order_by(*keys)
        )
        if user_id is not None:
            stmt = stmt.where(UsageDaily.user_id == user_id)
        await self._writer.flush()
        async with self._db.session() as session:
            rows = (await session.execute(stmt)).all()
        return [self._row(chosen, row) for row in rows]

    @staticmethod
    def _row(chosen: list[str], row: Any) -> UsageRow:
        values = dict(zip(chosen, row, strict=False))
        rest = list(row[len(chosen) :])
        prefix = rest.pop(0) if "key" in chosen else None
        requests, errors, prompt, completion, cost = rest
        key_id = values.get("key") or None  # 0: not through a key (a login)
        return UsageRow(
            day=values.get("day"),
            user=values.get("user"),
            key_id=key_id,
            key_prefix=prefix if key_id else None,
            model=values.get("model"),
            requests=int(requests or 0),
            errors=int(errors or 0),
            prompt_tokens=int(prompt or 0),
            completion_tokens=int(completion or 0),
            cost=float(cost or 0.0),
        )
