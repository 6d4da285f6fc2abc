"""``python -m bench``: the gateway against its upstream directly, in the same run.

Starts the fake upstream and ``chatgate serve`` (one worker, uvloop + httptools, a fresh data
dir, or a fresh PostgreSQL database and Redis prefix with ``--store pg-redis``, a user and key
made with the CLI, gRPC off), runs each scenario against both, checks every reply, prints a
table and writes the figures as JSON to ``bench/results/``. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench import scenarios
from bench.report import table, transport_table
from bench.stores import PG_ADMIN, REDIS, STORES

HERE = Path(__file__).resolve().parent
ALL = ("json", "stream", "paced", "paced-storage", "quota", "keycache", "clients", "transports")


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
    }


def raise_open_files(wanted: int) -> int:
    """A thousand streams are two thousand sockets here: raise the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def options(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short runs and small scenarios (~1 min)")
    p.add_argument("--scenarios", default=",".join(ALL), help=f"comma list of {', '.join(ALL)}")
    p.add_argument("--concurrency", help="comma list (default 1,32,256; quick 1,32)")
    p.add_argument("--duration", type=float, help="seconds per measured run (default 5; quick 1)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up before each run")
    p.add_argument("--pieces", type=int, default=50, help="chunks per streamed reply")
    p.add_argument("--streams", type=int, help="paced concurrent streams (1000; quick 100)")
    p.add_argument("--paced-pieces", type=int, help="chunks per paced reply (500; quick 50)")
    p.add_argument("--interval", type=float, default=0.02, help="seconds between paced chunks")
    p.add_argument("--ramp", type=float, help="seconds over which paced streams start")
    p.add_argument("--keys", type=int, help="fresh keys per key-cache run (300; quick 30)")
    p.add_argument("--upstream", choices=("lean", "demo"), default="lean")
    p.add_argument(
        "--store",
        choices=STORES,
        default="sqlite",
        help="sqlite (a fresh file, quotas in process) or pg-redis (a fresh PostgreSQL "
        "database and Redis prefix, both removed after the run)",
    )
    p.add_argument("--pg-admin", default=PG_ADMIN, help="PostgreSQL to create the database on")
    p.add_argument("--redis-url", default=REDIS, help="Redis for quotas with --store pg-redis")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="the gateway's worker processes (chatgate serve --workers; more than one needs "
        "--store pg-redis, whose Redis they share)",
    )
    p.add_argument(
        "--ws-compression",
        choices=("deflate", "none"),
        default="deflate",
        help="what the transports' WebSocket clients offer (browsers offer deflate)",
    )
    p.add_argument(
        "--client",
        choices=("aiohttp", "httpx"),
        default="aiohttp",
        help="the gateway's upstream client library",
    )
    p.add_argument(
        "--transports",
        help="comma list for the transports scenario (default: all, SSE first; see README)",
    )
    p.add_argument("--profile", help="comma list of scenarios to profile with py-spy (SVG)")
    p.add_argument(
        "--profile-format",
        choices=("flamegraph", "raw"),
        default="flamegraph",
        help="py-spy output: an SVG flame graph, or raw collapsed stacks (.txt) to read as text",
    )
    p.add_argument("--out", type=Path, default=HERE / "results", help="where JSON goes")
    p.add_argument("--markdown", action="store_true", help="also print a markdown table")
    opts = p.parse_args(argv)
    quick = opts.quick
    if opts.workers > 1 and opts.store != "pg-redis":
        p.error("--workers above 1 needs --store pg-redis: the workers share quotas in Redis")
    opts.scenarios = [s for s in opts.scenarios.split(",") if s]
    unknown = set(opts.scenarios) - set(ALL)
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    conc = opts.concurrency or ("1,32" if quick else "1,32,256")
    opts.concurrency = [int(c) for c in conc.split(",")]
    opts.duration = opts.duration or (1.0 if quick else 5.0)
    opts.warmup = opts.warmup if opts.warmup is not None else (0.3 if quick else 1.0)
    opts.streams = opts.streams or (100 if quick else 1000)
    opts.paced_pieces = opts.paced_pieces or (50 if quick else 500)
    opts.ramp = opts.ramp if opts.ramp is not None else (0.5 if quick else 5.0)
    opts.keys = opts.keys or (30 if quick else 300)
    opts.profile = [s for s in (opts.profile or "").split(",") if s]
    if "transports" in opts.scenarios or opts.transports:
        from bench.transports import TRANSPORTS

        names = [t for t in (opts.transports or ",".join(TRANSPORTS)).split(",") if t]
        unknown = set(names) - set(TRANSPORTS)
        if unknown:
            p.error(
                f"unknown transports: {', '.join(sorted(unknown))} (of {', '.join(TRANSPORTS)})"
            )
        opts.transports = names
    return opts


async def run(opts: argparse.Namespace) -> dict[str, Any]:
    raise_open_files(4 * opts.streams + 1024)
    with tempfile.TemporaryDirectory(prefix="chatgate-bench-") as tmp:
        bench = scenarios.Bench(opts, Path(tmp))
        try:
            await bench.start()
            print(header(opts, bench), flush=True)
            for name in opts.scenarios:
                await scenarios.RUNNERS[name](bench)
        finally:
            await bench.close()
        return {
            "started": bench.started,
            "machine": machine(),
            "store": bench.store.describe(),
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
            "gateway_rss_mb_after": bench.rss_after,
            "results": bench.results,
        }


def header(opts: argparse.Namespace, bench: scenarios.Bench) -> str:
    return (
        f"chatgate bench {bench.started}: {bench.store.header()}; upstream {opts.upstream}, "
        f"client {opts.client}" + (f", {opts.workers} workers" if opts.workers > 1 else "")
    )


def main(argv: list[str] | None = None) -> int:
    opts = options(argv)
    report = asyncio.run(run(opts))
    opts.out.mkdir(parents=True, exist_ok=True)
    store = "" if opts.store == "sqlite" else f"-{opts.store}"
    store += f"-w{opts.workers}" if opts.workers > 1 else ""
    path = opts.out / f"{report['started']}{store}{'-quick' if opts.quick else ''}.json"
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(table(report["results"]))
    transports = transport_table(report["results"])
    if transports:
        print()
        print(transports)
    if opts.markdown:
        print()
        print(table(report["results"], markdown=True))
        if transports:
            print()
            print(transport_table(report["results"], markdown=True))
    m = report["machine"]
    print(f"\nstore: {report['store']['kind']}")
    print(f"{m['cpus']} CPUs, {m['cpu_model']}; Python {m['python']}")
    print(f"gateway RSS after the load: {report['gateway_rss_mb_after']} MB")
    print(f"written to {path}")
    errors = sum(r["errors"] for r in report["results"])
    if errors:
        print(f"{errors} replies were wrong or failed", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
