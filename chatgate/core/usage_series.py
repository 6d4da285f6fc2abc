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
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

from sqlalchemy import func, select

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
    return values[max(0, math.ceil(share * len(values)) - 1)]


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
        stmt = select(
            RequestLog.created_at,
            RequestLog.status,
            RequestLog.error_code,
            RequestLog.latency_ms,
            RequestLog.first_token_ms,
        ).where(RequestLog.created_at >= bounds[0], RequestLog.created_at < bounds[-1])
        if user_id is not None:
            stmt = stmt.where(RequestLog.user_id == user_id)
        errors = [0] * count
        limited = [0] * count
        latencies: defaultdict[int, list[float]] = defaultdict(list)
        first_tokens: defaultdict[int, list[float]] = defaultdict(list)
        # A plain Core query on a connection, read whole: streaming it through the ORM's
        # session cost several times the time on SQLite.
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        for at, status, code, latency, first_token in rows:
            n = bisect_right(bounds, at) - 1
            if status == REFUSED or code == _RATE_LIMITED_CODE:
                limited[n] += 1
            elif status in _FAILED:
                errors[n] += 1
            elif status == "ok":
                latencies[n].append(float(latency))
                if first_token is not None:
                    first_tokens[n].append(float(first_token))
        return errors, limited, _percentiles(first_tokens, count), _percentiles(latencies, count)


def _percentiles(values: dict[int, list[float]], count: int) -> Percentiles:
    result = Percentiles([None] * count, [None] * count)
    for n, seen in values.items():
        seen.sort()
        result.p50[n] = _rounded(percentile(seen, 0.5))
        result.p95[n] = _rounded(percentile(seen, 0.95))
    return result


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
