"""The console's usage series over a busy request log: seconds and memory of one call.

Fills a fresh SQLite file with N request-log rows (spread over ``--spread`` days before today,
written in the order of time, in 50 users, 5 models, the statuses of real traffic), then
times ``UsageSeries.daily`` over the last ``--days`` days, as ``GET
/api/v1/admin/usage/daily`` calls it. Each size is measured
in a process of its own that only opens the database and calls, so that its peak resident set
(``ru_maxrss``) is the call's and not the filling's; the process reports its peak before the
first call (imports, engine) and after the calls.

``--code DIR`` measures the ``chatgate`` package of another checkout (a ``git worktree`` of an
older commit) over the same files, for a before and after:

    python -m bench.usage_series --rows 100000,1000000
    git worktree add --detach /tmp/wt_old <commit>
    python -m bench.usage_series --rows 100000,1000000 --code /tmp/wt_old --keep /tmp/usage_db

``--index`` adds an index on ``request_log.created_at`` (which the schema does not have) to
see what it would change. ``--database-url`` measures on another database (PostgreSQL: an
empty database made beforehand, filled on the first run, one size):

    createdb -h 127.0.0.1 -U postgres usage_bench
    python -m bench.usage_series --rows 1000000 \
        --database-url postgresql+asyncpg://postgres@127.0.0.1/usage_bench

Nothing here is asserted: it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

USERS = 50
MODELS = ("demo", "small", "large", "vision", "code")
OUTCOMES = (  # status, error code, weight: mostly answered, some refused, errors, 429s
    ("ok", None, 80),
    ("error", "upstream_error", 5),
    ("error", "upstream_rate_limited", 3),
    ("interrupted", None, 1),
    ("refused", "insufficient_quota", 6),
    ("cancelled", None, 5),
)
BATCH = 20_000


def _url(where: str) -> str:
    return where if "://" in where else f"sqlite+aiosqlite:///{where}"


async def is_empty(where: str) -> bool:
    from sqlalchemy import func, select

    from chatgate.store.db import Database
    from chatgate.store.tables import User

    db = Database(_url(where))
    await db.upgrade()
    async with db.engine.connect() as conn:
        users = await conn.scalar(select(func.count()).select_from(User))
    await db.close()
    return not users


async def fill(where: str, rows: int, spread: int, *, index: bool, seed: int = 1) -> None:
    """The schema, the users, ``rows`` log rows and the usage books of ``spread`` days, in a
    fresh database (a SQLite file's path, or a database URL)."""
    from sqlalchemy import Index, insert

    from chatgate.store.db import Database
    from chatgate.store.tables import RequestLog, UsageDaily, User

    db = Database(_url(where))
    await db.upgrade()
    pick = random.Random(seed)
    end = datetime.combine(date.today(), datetime.min.time()).timestamp()
    start = end - spread * 86_400
    weights = [w for *_, w in OUTCOMES]
    async with db.engine.begin() as conn:
        made = await conn.execute(
            insert(User).returning(User.id),
            [{"name": f"user{n}", "created_at": start} for n in range(USERS)],
        )
        users = list(made.scalars())
        if index:
            await conn.run_sync(
                lambda sync: Index("ix_request_log_created", RequestLog.created_at).create(sync)
            )
    step = (end - start) / rows
    for offset in range(0, rows, BATCH):
        # In the order of time, as a log is written, each batch in its own slice of the span.
        size = min(BATCH, rows - offset)
        low = start + offset * step
        times = sorted(pick.uniform(low, low + size * step) for _ in range(size))
        batch = []
        for at in times:
            status, code, _ = pick.choices(OUTCOMES, weights)[0]
            latency = pick.uniform(50, 20_000)
            batch.append(
                {
                    "created_at": at,
                    "user_id": pick.choice(users),
                    "key_id": 0,
                    "model": pick.choice(MODELS),
                    "provider": None,
                    "status": status,
                    "error_code": code,
                    "finish_reason": "stop" if status == "ok" else None,
                    "counted": status == "ok",
                    "prompt_tokens": 100,
                    "completion_tokens": 200,
                    "cost": 0.001,
                    "latency_ms": latency,
                    "first_token_ms": latency * pick.uniform(0.05, 0.5),
                }
            )
        async with db.engine.begin() as conn:
            await conn.execute(insert(RequestLog), batch)
    books = [
        {
            "user_id": user,
            "key_id": 0,
            "model": model,
            "day": (date.today() - timedelta(days=n + 1)).isoformat(),
            "requests": rows // (USERS * len(MODELS) * spread),
            "errors": 0,
            "prompt_tokens": 100,
            "completion_tokens": 200,
            "cost": 0.001,
        }
        for n in range(spread)
        for user in users
        for model in MODELS
    ]
    async with db.engine.begin() as conn:
        await conn.execute(insert(UsageDaily), books)
    await db.close()


async def _measure(where: str, days: int, repeat: int, by: str) -> dict[str, Any]:
    """In this process: the peak resident set before and after ``repeat`` calls, and each
    call's seconds."""
    from chatgate import __file__ as package
    from chatgate.core.clock import Clock
    from chatgate.core.usage_series import UsageSeries
    from chatgate.store.db import Database
    from chatgate.store.writer import BatchWriter

    db = Database(_url(where))
    series = UsageSeries(db, BatchWriter(db), Clock())
    end = date.today() - timedelta(days=1)
    start = end - timedelta(days=days - 1)
    # A range without rows first: the engine's connection, the statement's compilation.
    await series.daily(start=date(2001, 1, 1), end=date(2001, 1, days), by="user")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = []
    requests = 0
    for _ in range(repeat):
        began = time.perf_counter()
        found = await series.daily(start=start, end=end, by="user" if by == "user" else "model")
        seconds.append(time.perf_counter() - began)
        requests = sum(found.errors) + sum(found.rate_limited)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    await db.close()
    return {
        "package": str(Path(package).parent),
        "seconds": seconds,
        "maxrss_before_kb": before,
        "maxrss_after_kb": after,
        "errors_and_429s": requests,
    }


def measure_apart(where: str, days: int, repeat: int, by: str, code: Path | None) -> dict[str, Any]:
    """``_measure`` in a fresh interpreter, importing ``chatgate`` from ``code`` when given."""
    command = [sys.executable, "-m", "bench.usage_series", "--measure", where]
    command += ["--days", str(days), "--repeat", str(repeat), "--by", by]
    if code is not None:
        command += ["--code", str(code.resolve())]
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=_sizes, default=[100_000, 1_000_000])
    parser.add_argument("--spread", type=int, default=28, help="days the rows are spread over")
    parser.add_argument("--days", type=int, default=14, help="days asked for (the default)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--by", choices=("user", "model"), default="user")
    parser.add_argument("--index", action="store_true", help="add an index on created_at")
    parser.add_argument("--code", type=Path, help="measure the chatgate package in this tree")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the databases here")
    parser.add_argument("--database-url", help="measure here instead of a SQLite file")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure is not None:
        if args.code is not None:  # before anything imports chatgate
            sys.path.insert(0, str(args.code))
        found = asyncio.run(_measure(args.measure, args.days, args.repeat, args.by))
        print(json.dumps(found))
        return

    with tempfile.TemporaryDirectory(prefix="usage-series-") as scratch:
        where = args.keep or Path(scratch)
        where.mkdir(parents=True, exist_ok=True)
        if args.database_url and len(args.rows) != 1:
            parser.error("--database-url takes one size of --rows")
        for rows in args.rows:
            suffix = "-indexed" if args.index else ""
            target = args.database_url or str(where / f"log-{rows}-{args.spread}d{suffix}.db")
            fresh = not Path(target).exists() if args.database_url is None else None
            if fresh or (fresh is None and asyncio.run(is_empty(target))):
                began = time.perf_counter()
                asyncio.run(fill(target, rows, args.spread, index=args.index))
                print(f"filled {rows:,} rows in {time.perf_counter() - began:.1f} s")
            found = measure_apart(target, args.days, args.repeat, args.by, args.code)
            times = found["seconds"]
            print(
                f"{rows:>10,} rows, {args.days} of {args.spread} days, by {args.by}: "
                f"best {min(times):.3f} s, median {statistics.median(times):.3f} s; "
                f"peak RSS {found['maxrss_before_kb'] / 1024:.0f} MB before the calls, "
                f"{found['maxrss_after_kb'] / 1024:.0f} MB after "
                f"({found['errors_and_429s']:,} errors and 429s; chatgate from "
                f"{found['package']})"
            )


if __name__ == "__main__":
    main()
