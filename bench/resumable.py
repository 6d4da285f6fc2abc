"""``python -m bench.resumable``: what the resumable reply store adds to a streamed reply.

The same streamed reply is asked for through the native route
(``POST /api/v1/conversations/new/messages``) twice over: as a plain stream, and with
``"resumable": true``, which runs it as a job whose every event goes through the reply store and
is read back by the request's own follower. The difference is the store's cost: the job, the
numbered events, the follower. Both run on a gateway whose store is in memory (no Redis) and on
one with ``redis_url`` set, whose store is Redis (its quotas are then in Redis too, for both
kinds of reply alike). The database is SQLite in both, so that only the reply store differs.

By default the gateway runs under callgrind and its CPU instructions are counted for a fixed
number of replies after a warm-up (see ``bench/instructions.py``: the count is steady from run
to run, where CPU time on this shared machine is not). Redis's own CPU, read from ``INFO cpu``
before and after, is printed as well; it is noisier (anyone else's commands count too).
``--cpu`` runs the gateway as it is and reads its CPU time instead.

    python -m bench.resumable [--requests 300] [--pieces 50] [--stores memory,redis] [--cpu]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import orjson
import redis.asyncio as aioredis

from bench.instructions import _bench_key, _control, _counted
from bench.load import Run, build_request, closed_loop
from bench.procs import Proc, free_port, gateway_env, start_upstream
from bench.upstream import PACED

REDIS = "redis://127.0.0.1:6379/0"
PATH = "/api/v1/conversations/new/messages"


async def _redis_cpu(url: str) -> float:
    client = aioredis.Redis.from_url(url)
    try:
        info = await client.info("cpu")
    finally:
        await client.aclose()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _checked(run: Run, pieces: int) -> float:
    """Every reply answered whole (its ``done`` counts all its pieces, and no error came); the
    number of events a reply had, on average (the gateway joins chunks that come together)."""
    events = 0
    for sample in run.samples:
        body = sample.body or b""
        if sample.status != 200 or sample.error or b"event: error" in body:
            raise RuntimeError(f"a reply failed: {sample.status} {sample.error} {body[-300:]!r}")
        done = orjson.loads(body.rsplit(b"event: done\ndata: ", 1)[-1])
        if done["usage"]["completion_tokens"] != pieces:
            raise RuntimeError(f"a reply came incomplete: {body[-300:]!r}")
        events += body.count(b"event: delta") + 1
    return events / len(run.samples)


async def _measure(
    gateway: Proc, key: str, resumable: bool, opts: argparse.Namespace, redis_url: str | None
) -> tuple[float, float, float]:
    """(gateway's instructions or CPU seconds, Redis's CPU seconds, events) per reply."""
    body = {"content": "one question", "model": PACED, "max_tokens": opts.pieces}
    if resumable:
        body["resumable"] = True
    request = build_request("127.0.0.1", gateway.port, PATH, orjson.dumps(body), key)
    warm = max(opts.concurrency, opts.requests // 4)
    warmed = await closed_loop(
        "127.0.0.1", gateway.port, lambda i: request, opts.concurrency, 600, max_requests=warm
    )
    _checked(warmed, opts.pieces)
    if not opts.cpu:
        _control(gateway.pid, "--zero")
        _control(gateway.pid, "--instr=on")
    cpu = gateway.cpu_seconds()
    redis_cpu = await _redis_cpu(redis_url) if redis_url else 0.0
    run = await closed_loop(
        "127.0.0.1",
        gateway.port,
        lambda i: request,
        opts.concurrency,
        3600,
        max_requests=opts.requests,
    )
    redis_used = (await _redis_cpu(redis_url) - redis_cpu) if redis_url else 0.0
    if opts.cpu:
        used = gateway.cpu_seconds() - cpu
    else:
        _control(gateway.pid, "--dump")
        _control(gateway.pid, "--instr=off")
        used = float(_counted(gateway.log.parent))
    events = _checked(run, opts.pieces)
    n = len(run.samples)
    return used / n, redis_used / n, events


async def _one_store(store: str, opts: argparse.Namespace, work: Path) -> list[str]:
    upstream = start_upstream("lean", opts.interval, work, pieces=opts.pieces)
    gateway: Proc | None = None
    settings: dict[str, str] = {"conversation_titles": "false", "log_level": "warning"}
    if not opts.cpu:  # under callgrind the gateway runs some 50 times slower
        settings.update({f"upstream_timeouts__{t}": "600" for t in ("first_token", "idle")})
    redis_url = opts.redis_url if store == "redis" else None
    prefix = f"chatgate-bench-{secrets.token_hex(6)}:"
    if redis_url:
        settings.update(redis_url=redis_url, redis_prefix=prefix)
    try:
        await upstream.wait_ready("/v1/models")
        env = gateway_env(work / f"data-{store}", upstream, **settings)
        key = _bench_key(env, migrate=False)
        port = free_port()
        argv = [sys.executable, "-m", "chatgate", "serve", "--port", str(port)]
        out = work / f"cg-{store}"
        out.mkdir()
        if not opts.cpu:
            argv = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}/cg.%p",
                *argv,
            ]
        gateway = Proc(f"gateway ({store})", argv, port, env, out / "gw.log")
        await gateway.wait_ready("/healthz", within=600)
        plain, plain_redis, _ = await _measure(gateway, key, False, opts, redis_url)
        kept, redis_cpu, events = await _measure(gateway, key, True, opts, redis_url)
        unit, scale = ("ms CPU", 1e3) if opts.cpu else ("M instructions", 1e-6)
        added = kept - plain
        lines = [
            f"{store:6s} plain stream      {plain * scale:8.3f} {unit} per reply",
            f"{store:6s} resumable stream  {kept * scale:8.3f} {unit} per reply",
            f"{store:6s} added by the store {added * scale:7.3f} {unit} per reply"
            f" ({added / plain:+.0%}), {added * scale / events * 1e3:7.1f} "
            f"{'µs CPU' if opts.cpu else 'k instructions'} per event ({events:.1f} events)",
        ]
        if redis_url:
            lines.append(
                f"{store:6s} Redis's own CPU    {redis_cpu * 1e6:7.0f} µs per resumable reply, "
                f"{plain_redis * 1e6:7.0f} µs per plain one"
            )
        return lines
    finally:
        if gateway is not None:
            gateway.stop()
        upstream.stop()
        if redis_url:
            client = aioredis.Redis.from_url(redis_url)
            keys = [k async for k in client.scan_iter(match=prefix + "*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()


async def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.resumable", description=__doc__)
    p.add_argument("--requests", type=int, default=300, help="counted replies per kind")
    p.add_argument("--pieces", type=int, default=50, help="chunks per streamed reply")
    p.add_argument("--concurrency", type=int, default=16, help="replies at once")
    p.add_argument("--interval", type=float, default=0.02, help="seconds between chunks")
    p.add_argument("--stores", default="memory,redis", help="comma list of memory, redis")
    p.add_argument("--redis-url", default=REDIS)
    p.add_argument("--cpu", action="store_true", help="CPU time instead of instructions")
    opts = p.parse_args(argv)
    if not opts.cpu and shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind); or use --cpu")
    print(f"{opts.requests} streamed replies of {opts.pieces} chunks, {opts.concurrency} at once")
    with tempfile.TemporaryDirectory(prefix="chatgate-resumable-") as tmp:
        for store in opts.stores.split(","):
            work = Path(tmp) / store
            work.mkdir()
            for line in await _one_store(store, opts, work):
                print(line, flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(main())
