"""Usage as series per day, for charts: requests, tokens and cost stacked by user or by model,
errors and 429s, and latency percentiles, with the days of the server's time zone.

What each series counts:

- ``requests``, ``tokens``, ``cost``: the usage books (``usage_daily``), the same numbers the
  daily limits and the usage reports use: counted requests (answered, or cut off by the client;
  a request the upstream failed is given back), prompt plus completion tokens, and cost.
- ``rate_limited``: requests answered 429: refused by chatgate's own limits (a request-log row
  ``refused``) or failed because the upstream answered 429 (``upstream_rate_limited``).
- ``errors``: the other requests that failed once admitted (a request-log row ``error``, or
  ``interrupted`` by a crash). Cancelled requests are neither.
- latency and time to the first token: the 50th and 95th percentiles (nearest rank) of the
  requests that ended ``ok`` that day, in milliseconds; ``None`` on a day without any.

The request log has times, not days, so its rows are put in the zone's days by the days'
midnights (a day that a clock change makes 23 or 25 hours long keeps its real length).
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    SQLColumnExpression,
    Subquery,
    case,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from chatgate.core.clock import Clock
from chatgate.core.errors import UnprocessableRequest
from chatgate.core.usage import INTERRUPTED, REFUSED
from chatgate.store.db import Database
from chatgate.store.tables import RequestLog, UsageDaily, User
from chatgate.store.writer import BatchWriter

MAX_DAYS = 366
DEFAULT_DAYS = 14
By = Literal["user", "model"]
_RATE_LIMITED_CODE = "upstream_rate_limited"
_FAILED = ("error", INTERRUPTED)


@dataclass(slots=True)
class Series:
    key: str
    requests: list[int]
    tokens: list[int]
    cost: list[float]


@dataclass(slots=True)
class Percentiles:
    p50: list[float | None]
    p95: list[float | None]


@dataclass(slots=True)
class DailySeries:
    start: str
    end: str
    by: By
    days: list[str]
    series: list[Series]
    errors: list[int]
    rate_limited: list[int]
    first_token_ms: Percentiles
    latency_ms: Percentiles
    zone: str = ""


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile of sorted ``values`` (None when there are none)."""
    if not values:
        return None
    return values[nearest_rank(share, len(values)) - 1]


def nearest_rank(share: float, size: int) -> int:
    """The rank (from 1) of a ``share`` percentile among ``size`` sorted values:
    ``ceil(share * size)``, the product in double precision, and at least 1."""
    return max(1, math.ceil(share * size))


class UsageSeries:
    def __init__(self, db: Database, writer: BatchWriter, clock: Clock) -> None:
        self._db = db
        self._writer = writer
        self._clock = clock

    def day_range(self, start: date | None, end: date | None) -> tuple[date, date]:
        """The days asked for: by default the 14 days up to ``end`` (today unless given);
        at most 366."""
        last = end or self._clock.local().date()
        first = start or last - timedelta(days=DEFAULT_DAYS - 1)
        if first > last:
            raise UnprocessableRequest("start is after end", param="start")
        if (last - first).days + 1 > MAX_DAYS:
            raise UnprocessableRequest(
                f"a range is at most {MAX_DAYS} days; this one has {(last - first).days + 1}",
                param="start",
            )
        return first, last

    def _midnight(self, day: date) -> float:
        local = datetime.combine(day, time(0), self._clock.tz)
        return local.timestamp()  # naive: the system's zone, as the clock's days

    async def daily(
        self,
        *,
        start: date | None = None,
        end: date | None = None,
        by: By = "user",
        user_id: int | None = None,
    ) -> DailySeries:
        first, last = self.day_range(start, end)
        days = [(first + timedelta(n)).isoformat() for n in range((last - first).days + 1)]
        await self._writer.flush()
        series = await self._books(days, by, user_id)
        errors, limited, first_token, latency = await self._log(first, len(days), user_id)
        return DailySeries(
            start=days[0],
            end=days[-1],
            by=by,
            days=days,
            series=series,
            errors=errors,
            rate_limited=limited,
            first_token_ms=first_token,
            latency_ms=latency,
            zone=self._clock.zone_name(),
        )

    async def _books(self, days: list[str], by: By, user_id: int | None) -> list[Series]:
        key = User.name if by == "user" else UsageDaily.model
        stmt = (
            select(
                UsageDaily.day,
                key,
                func.sum(UsageDaily.requests),
                func.sum(UsageDaily.prompt_tokens + UsageDaily.completion_tokens),
                func.sum(UsageDaily.cost),
            )
            .join(User, User.id == UsageDaily.user_id)
            .where(UsageDaily.day >= days[0], UsageDaily.day <= days[-1])
            .group_by(UsageDaily.day, key)
        )
        if user_id is not None:
            stmt = stmt.where(UsageDaily.user_id == user_id)
        async with self._db.session() as session:
            rows = (await session.execute(stmt)).all()
        index = {day: n for n, day in enumerate(days)}
        found: dict[str, Series] = {}
        for day, name, requests, tokens, cost in rows:
            one = found.get(name)
            if one is None:
                size = len(days)
                one = found[name] = Series(name, [0] * size, [0] * size, [0.0] * size)
            n = index[day]
            one.requests[n] += int(requests or 0)
            one.tokens[n] += int(tokens or 0)
            one.cost[n] += float(cost or 0.0)
        # The largest first (the bottom of a stacked chart), then by name.
        return sorted(found.values(), key=lambda s: (-sum(s.requests), -sum(s.tokens), s.key))

    async def _log(
        self, first: date, count: int, user_id: int | None
    ) -> tuple[list[int], list[int], Percentiles, Percentiles]:
        bounds = [self._midnight(first + timedelta(n)) for n in range(count + 1)]
        logged = _Logged(bounds, user_id)
        errors = [0] * count
        limited = [0] * count
        answered = [0] * count  # requests that ended ok: the latencies' count
        timed = [0] * count  # and of those, the ones with a time to the first token
        async with self._db.engine.connect() as conn:
            counted = await conn.execute(logged.counted())
            for n, status, upstream_429, rows, first_tokens in counted:
                if status == REFUSED or upstream_429:
                    limited[n] += rows
                elif status in _FAILED:
                    errors[n] += rows
                elif status == "ok":
                    answered[n] += rows
                    timed[n] += first_tokens
            if self._db.is_sqlite:
                found = await _ranked_on_sqlite(conn, logged, answered, timed)
            else:
                stmt = logged.percentiles()
                found = [
                    (n, f50, f95, l50, l95) for n, f50, f95, l50, l95 in await conn.execute(stmt)
                ]
        first_token = Percentiles([None] * count, [None] * count)
        latency = Percentiles([None] * count, [None] * count)
        for n, ft50, ft95, lat50, lat95 in found:
            first_token.p50[n], first_token.p95[n] = _rounded(ft50), _rounded(ft95)
            latency.p50[n], latency.p95[n] = _rounded(lat50), _rounded(lat95)
        return errors, limited, first_token, latency


# ---- the request log per day, in SQL -------------------------------------------------------
#
# The log is summed where it lies: what reaches Python is a few rows a day, not the day's
# rows. Requests are counted by day, status and whether the upstream answered 429, and those
# few groups are sorted into errors and 429s in Python, by the same tests as the module's
# docstring says and without SQL's NULL logic in the way. The percentiles are found in the
# database, by each engine its own way.

_SHARES = (0.5, 0.95)
DayPercentiles = tuple[int, float | None, float | None, float | None, float | None]


def _day_of(
    at: SQLColumnExpression[float], bounds: list[float], lo: int, hi: int
) -> ColumnElement[int]:
    """The index of the day that ``at`` falls in, among days ``lo`` to ``hi - 1``: a binary
    search written as nested CASEs on the days' midnights, so at most about nine comparisons
    a row for a year, and exactly the days of ``bisect_right(bounds, at) - 1``, whatever length
    a clock change gave a day. (Arithmetic on 86,400-second days would get those days wrong,
    and a join on a table of days leaves the plan to the planner.)"""
    if hi - lo == 1:
        return literal(lo, Integer)
    mid = (lo + hi) // 2
    return case(
        (at < bounds[mid], _day_of(at, bounds, lo, mid)),
        else_=_day_of(at, bounds, mid, hi),
    )


class _Logged:
    """The statements over the log's rows in the range (and of one user, when given).

    Days are given as the index of the day (``n``), in a subquery, so that the statements
    group by the subquery's column: PostgreSQL would not take a GROUP BY of the same CASE
    with its own parameters for the column's."""

    def __init__(self, bounds: list[float], user_id: int | None) -> None:
        log = RequestLog
        self._day = _day_of(log.created_at, bounds, 0, len(bounds) - 1).label("n")
        self._where = [log.created_at >= bounds[0], log.created_at < bounds[-1]]
        if user_id is not None:
            self._where.append(log.user_id == user_id)

    def counted(self) -> Select[int, str, bool | None, int, int]:
        """Rows and rows with a time to the first token, by day, status and whether the
        upstream answered 429 (NULL for a row without an error code: not a 429)."""
        log = RequestLog
        rows = (
            select(
                self._day,
                log.status,
                (log.error_code == _RATE_LIMITED_CODE).label("upstream_429"),
                log.first_token_ms,
            )
            .where(*self._where)
            .subquery("logged")
        )
        return select(
            rows.c.n,
            rows.c.status,
            rows.c.upstream_429,
            func.count(),
            func.count(rows.c.first_token_ms),
        ).group_by(rows.c.n, rows.c.status, rows.c.upstream_429)

    def answered(self) -> Subquery:
        """The day, latency and time to the first token of the requests that ended ``ok``
        (and not with the upstream's 429, which makes a 429 whatever the status)."""
        log = RequestLog
        upstream_429 = log.error_code == _RATE_LIMITED_CODE
        return (
            select(self._day, log.latency_ms, log.first_token_ms)
            .where(*self._where, log.status == "ok", or_(log.error_code.is_(None), ~upstream_429))
            .subquery("answered")
        )

    def percentiles(self) -> Select[int, float | None, float | None, float | None, float | None]:
        """PostgreSQL: ``percentile_disc`` is the nearest-rank percentile of ``percentile``:
        the value at ``ceil(share * count)``, the product in double precision as Python works
        it out, NULLs left out as the lists leave them out. (``percentile_cont``
        interpolates between two values: another number.)"""
        rows = self.answered()

        def disc(share: float, column: ColumnElement[float]) -> ColumnElement[float]:
            return func.percentile_disc(share).within_group(column)

        return select(
            rows.c.n,
            disc(_SHARES[0], rows.c.first_token_ms),
            disc(_SHARES[1], rows.c.first_token_ms),
            disc(_SHARES[0], rows.c.latency_ms),
            disc(_SHARES[1], rows.c.latency_ms),
        ).group_by(rows.c.n)


async def _ranked_on_sqlite(
    conn: AsyncConnection, logged: _Logged, answered: list[int], timed: list[int]
) -> list[DayPercentiles]:
    """SQLite has no percentile aggregate. From the day's counts come the ranks that hold its
    percentiles (``nearest_rank``, the very function ``percentile`` uses), and the values at
    those ranks are found by ``row_number()`` over each day's answered requests ordered by
    value: one ordering for latency and one for the time to the first token (its NULLs last,
    after the day's values), in one statement that returns the rows at the ranks wanted.
    The ranks are counted within each day, so that rows written between the two statements
    (each is a snapshot of its own) can only move a percentile within its own day.

    Window functions rather than the days' values fetched in order and picked here: what
    crosses into Python is the rows wanted, four a day, instead of every answered request of
    the range through aiosqlite's thread and the row processing, and SQLite's sorter spills
    to a temporary file past its cache, so the process's memory does not grow with the log.
    Fetched in order, the values would cost as much sorting in SQLite and the transfer on
    top. The price is time: SQLite's sort and window steps cost more a row than fetching the
    values unsorted and sorting them in Python did (``bench/usage_series.py`` measures both):
    a second or two a million rows, for memory that stays flat where it grew by some 170 MB
    a million rows."""
    # (day, rank) -> which percentiles sit there (a day of one value has both at rank 1)
    at_latency: dict[tuple[int, int], list[int]] = defaultdict(list)
    at_first_token: dict[tuple[int, int], list[int]] = defaultdict(list)
    for n, (size, with_first_token) in enumerate(zip(answered, timed, strict=True)):
        for which, share in enumerate(_SHARES):
            if size:
                at_latency[(n, nearest_rank(share, size))].append(which)
            if with_first_token:
                at_first_token[(n, nearest_rank(share, with_first_token))].append(which)
    if not at_latency:
        return []
    rows = logged.answered()
    by_latency = func.row_number().over(partition_by=rows.c.n, order_by=rows.c.latency_ms)
    by_first_token = func.row_number().over(
        partition_by=rows.c.n, order_by=rows.c.first_token_ms.asc().nulls_last()
    )
    ranked = select(
        rows.c.n,
        rows.c.latency_ms,
        rows.c.first_token_ms,
        by_latency.label("latency_rank"),
        by_first_token.label("first_token_rank"),
    ).subquery("ranked")
    wanted = [tuple_(ranked.c.n, ranked.c.latency_rank).in_(list(at_latency))]
    if at_first_token:
        wanted.append(tuple_(ranked.c.n, ranked.c.first_token_rank).in_(list(at_first_token)))
    found: list[list[float | None]] = [[None] * 4 for _ in answered]
    stmt = select(ranked).where(or_(*wanted))
    for n, latency, first_token, latency_rank, first_token_rank in await conn.execute(stmt):
        for which in at_latency.get((n, latency_rank), ()):
            found[n][2 + which] = latency
        for which in at_first_token.get((n, first_token_rank), ()):
            found[n][which] = first_token
    return [(n, ft50, ft95, lat50, lat95) for n, (ft50, ft95, lat50, lat95) in enumerate(found)]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


CHARTS = ("requests", "tokens", "cost", "errors", "latency")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    """A name as a spreadsheet cell: one that would start a formula is quoted with ``'``."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def chart_csv(found: DailySeries, chart: str) -> str:
    """The rows behind one chart, with a header row: one row per day and user (or model) for
    ``requests``, ``tokens`` and ``cost`` (days without any left out), one per day for
    ``errors`` and ``latency``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if chart in ("requests", "tokens", "cost"):
        writer.writerow(["day", found.by, chart])
        for n, day in enumerate(found.days):
            for one in found.series:
                value = getattr(one, chart)[n]
                if value:
                    writer.writerow([day, _cell(one.key), round(value, 6)])
    elif chart == "errors":
        writer.writerow(["day", "errors", "rate_limited"])
        for row in zip(found.days, found.errors, found.rate_limited, strict=True):
            writer.writerow(row)
    elif chart == "latency":
        writer.writerow(
            ["day", "first_token_p50_ms", "first_token_p95_ms", "latency_p50_ms", "latency_p95_ms"]
        )
        first, whole = found.first_token_ms, found.latency_ms
        for n, day in enumerate(found.days):
            values = (first.p50[n], first.p95[n], whole.p50[n], whole.p95[n])
            writer.writerow([day, *("" if v is None else v for v in values)])
    else:
        raise UnprocessableRequest(f"chart is one of {', '.join(CHARTS)}", param="chart")
    return out.getvalue()
