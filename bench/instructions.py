"""``python -m bench.instructions``: the gateway's CPU instructions per request, counted.

CPU time per request moves by a third from one run to the next on a shared 2-core machine, which
hides any change worth less than that. This counts instead: the gateway runs under valgrind's
callgrind with counting switched off, and it is switched on only for a fixed number of requests
after a warm-up, so start-up is not counted. The count is the same from run to run within about
1% whatever else the machine is doing, which makes it the figure to compare a change with (the
gateway runs some 50 times slower meanwhile, so it says nothing about latency; kernel time is
not counted). Needs valgrind (``apt-get install valgrind``).

    python -m bench.instructions [--loads json,stream,paced] [--requests 1000] [--store pg-redis]
    python -m bench.instructions --floor    # bench/floor.py, a bare relay, for comparison
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from bench.load import build_request, closed_loop
from bench.procs import Proc, chatgate_cli, free_port, gateway_env, start_upstream
from bench.runner import Load, now
from bench.stores import STORES, open_store
from bench.upstream import INSTANT, PACED

LOADS = {
    # name: (streamed, model, concurrency); paced runs few streams so that chunks stay apart
    "json": (False, INSTANT, 32),
    "stream": (True, INSTANT, 32),
    "paced": (True, PACED, 5),
}


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, check=True)


def _counted(out: Path) -> int:
    """Instructions in the newest dump callgrind wrote."""
    dump = max(out.glob("cg.*.*"), key=lambda p: p.stat().st_mtime)
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dump}")


async def count(
    name: str, gateway: Proc, key: str, requests: int, pieces: int, concurrency: int | None
) -> float:
    """Instructions per request over ``requests`` requests of load ``name``."""
    stream, model, usual = LOADS[name]
    concurrency = concurrency or usual
    load = Load(name, stream, concurrency, 600.0, pieces=pieces, model=model)
    request = build_request(
        "127.0.0.1", gateway.port, "/v1/chat/completions", orjson.dumps(load.body()), key
    )
    warm = min(200, requests)
    await closed_loop(
        "127.0.0.1", gateway.port, lambda i: request, concurrency, 600, max_requests=warm
    )
    _control(gateway.pid, "--zero")
    _control(gateway.pid, "--instr=on")
    run = await closed_loop(
        "127.0.0.1", gateway.port, lambda i: request, concurrency, 600, max_requests=requests
    )
    _control(gateway.pid, "--dump")
    _control(gateway.pid, "--instr=off")
    failed = sum(1 for s in run.samples if s.status != 200 or s.error)
    if failed:
        raise RuntimeError(f"{failed} of {len(run.samples)} {name} requests failed")
    return _counted(gateway.log.parent) / len(run.samples)


def _bench_key(env: dict[str, str], migrate: bool) -> str:
    """The user ``bench`` with no daily cap (its quota still checked), and a key of theirs."""
    if migrate:
        chatgate_cli(env, "db", "upgrade")
    chatgate_cli(env, "users", "create", "bench")
    chatgate_cli(env, "users", "set-quota", "bench", "--daily-requests", "-1")
    out = chatgate_cli(env, "keys", "create", "--user", "bench", "--name", "bench")
    return out.splitlines()[-1].strip()


async def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    p.add_argument("--loads", default="json,stream,paced", help="comma list of json, stream, paced")
    p.add_argument("--requests", type=int, default=1000, help="counted requests per load")
    p.add_argument("--pieces", type=int, default=50, help="chunks per streamed reply")
    p.add_argument("--interval", type=float, default=0.02, help="seconds between paced chunks")
    p.add_argument("--store", choices=STORES, default="sqlite", help="see bench/stores.py")
    p.add_argument(
        "--concurrency", type=int, help="requests at once (default 32; 5 for paced streams)"
    )
    p.add_argument(
        "--floor",
        action="store_true",
        help="count bench/floor.py (a bare relay on the same stack) instead of the gateway",
    )
    opts = p.parse_args(argv)
    if shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    store = await open_store(opts.store, now())
    with tempfile.TemporaryDirectory(prefix="chatgate-instr-") as tmp:
        work = Path(tmp)
        upstream = start_upstream("lean", opts.interval, work)
        gateway: Proc | None = None
        try:
            await upstream.wait_ready("/v1/models")
            env = gateway_env(work / "data", upstream, **store.settings)
            port = free_port()
            argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
            argv += [f"--callgrind-out-file={work}/cg.%p", sys.executable, "-m"]
            if opts.floor:
                key = "unused"
                argv += ["bench.floor", "--port", str(port), "--upstream", env["OPENAI_BASE_URL"]]
            else:
                key = _bench_key(env, store.database_url is not None)
                argv += ["chatgate", "serve", "--port", str(port)]
            gateway = Proc("gateway (callgrind)", argv, port, env, work / "gateway.log")
            await gateway.wait_ready("/healthz", within=600)
            for name in opts.loads.split(","):
                n = opts.requests if name != "paced" else max(20, opts.requests // 25)
                per = await count(name, gateway, key, n, opts.pieces, opts.concurrency)
                print(f"{name:7s} {n:5d} requests  {per / 1e6:7.3f} M instructions per request")
        finally:
            if gateway is not None:
                gateway.stop()
            upstream.stop()
            await store.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(main())
