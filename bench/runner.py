"""One measured run: a load against one target, with the target's CPU time and memory read
over the same window, every reply checked, and the figures summed up."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.check import Expect, check
from bench.load import build_request, closed_loop
from bench.procs import Proc
from bench.upstream import INSTANT, reply_pieces


@dataclass
class Target:
    """Something to send load to: the upstream directly, or a gateway in front of it."""

    name: str
    proc: Proc
    key: str | None = None


@dataclass
class Load:
    """What to send: ``concurrency`` users, for ``duration`` seconds after a ``ramp``."""

    scenario: str
    stream: bool
    concurrency: int
    duration: float
    pieces: int = 50
    model: str = INSTANT
    ramp: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    allow_quota: bool = False
    keys: list[str] | None = None  # one per request in turn, instead of the target's key
    max_requests: int | None = None
    timeout: float = 60.0
    warmup: float = 0.5

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": "Tell me something, please."}],
            "max_tokens": self.pieces,
            "stream": self.stream,
        }
        body.update(self.extra)
        return body

    def expect(self) -> Expect:
        if self.model == "demo":
            from chatgate.providers.demo import plan

            pieces = tuple(plan(self.body()).pieces)
        else:
            pieces = tuple(reply_pieces(self.pieces))
        return Expect(pieces, self.stream, allow_quota=self.allow_quota)


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    ordered = sorted(values)
    last = len(ordered) - 1

    def at(q: float) -> float:
        return round(ordered[min(last, round(q * last))] * 1000, 3)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99)}


async def _peak_rss(proc: Proc, peak: list[float]) -> None:
    while True:
        peak[0] = max(peak[0], proc.rss_mb())
        await asyncio.sleep(0.2)


async def measure(target: Target, load: Load, profile: str | None = None) -> dict[str, Any]:
    """Warm up, then run ``load`` against ``target`` and return its figures."""
    port = target.proc.port
    path = "/v1/chat/completions"
    payload = orjson.dumps(load.body())
    keys: list[str | None] = list(load.keys) if load.keys else [target.key]
    requests = [build_request("127.0.0.1", port, path, payload, k) for k in keys]
    if load.warmup and load.keys is None:
        model = "demo" if load.model == "demo" else INSTANT
        warm = Load(
            load.scenario,
            load.stream,
            min(load.concurrency, 256),
            load.warmup,
            model=model,
            extra=load.extra,
        )
        if not load.allow_quota:
            warm_body = orjson.dumps(warm.body())
            warm_req = build_request("127.0.0.1", port, path, warm_body, target.key)
            await closed_loop("127.0.0.1", port, lambda i: warm_req, warm.concurrency, load.warmup)
    spy = _start_profile(target, load, profile)
    rss_before = target.proc.rss_mb()
    peak = [rss_before]
    sampler = asyncio.create_task(_peak_rss(target.proc, peak))
    cpu0 = target.proc.cpu_seconds()
    own0 = resource.getrusage(resource.RUSAGE_SELF)
    run = await closed_loop(
        "127.0.0.1",
        port,
        lambda i: requests[i % len(requests)],
        load.concurrency,
        load.duration,
        limit=load.timeout,
        ramp=load.ramp,
        max_requests=load.max_requests,
    )
    cpu = target.proc.cpu_seconds() - cpu0
    own1 = resource.getrusage(resource.RUSAGE_SELF)
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    if spy is not None:
        await spy.wait()
    return _summary(target, load, run, cpu, own1, own0, rss_before, peak[0], profile)


def _summary(
    target: Target,
    load: Load,
    run: Any,
    cpu: float,
    own1: Any,
    own0: Any,
    rss_before: float,
    rss_peak: float,
    profile: str | None,
) -> dict[str, Any]:
    expect = load.expect()
    verdicts = [check(s, expect) for s in run.samples]
    good = [s for s, v in zip(run.samples, verdicts, strict=True) if v.ok]
    served = [s for s, v in zip(run.samples, verdicts, strict=True) if v.ok and not v.rejected]
    errors = [v.why for v in verdicts if not v.ok]
    seconds = run.ended - run.started
    n = len(run.samples)
    client_cpu = (own1.ru_utime - own0.ru_utime) + (own1.ru_stime - own0.ru_stime)
    return {
        "scenario": load.scenario,
        "target": target.name,
        "concurrency": load.concurrency,
        "stream": load.stream,
        "pieces": load.pieces,
        "model": load.model,
        "requests": n,
        "ok": len(served),
        "rejected": len(good) - len(served),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
        "stored": sum(1 for v in verdicts if v.stored),
        "seconds": round(seconds, 3),
        "rps": round(n / seconds, 1) if seconds else 0.0,
        "latency_ms": percentiles([s.latency for s in good if s.latency is not None]),
        "ttfb_ms": percentiles([s.ttfb for s in good if s.ttfb is not None]),
        "cpu_ms_per_req": round(cpu * 1000 / n, 3) if n else None,
        "cpu_cores": round(cpu / seconds, 3) if seconds else None,
        "client_cpu_ms_per_req": round(client_cpu * 1000 / n, 3) if n else None,
        "rss_mb_before": round(rss_before, 1),
        "rss_mb_peak": round(rss_peak, 1),
        "rss_mb_after": round(target.proc.rss_mb(), 1),
        "rss_kb_per_stream": (
            round((rss_peak - rss_before) * 1024 / load.concurrency, 1) if load.ramp else None
        ),
        "profile": profile,
    }


def _start_profile(target: Target, load: Load, svg: str | None) -> Any:
    """py-spy on the target over the measured window: a flame graph (``.svg``) or raw collapsed
    stacks (``.txt``), by the file's name."""
    if svg is None:
        return None
    seconds = max(1, round(load.ramp + load.duration))
    argv = ["py-spy", "record", "--pid", str(target.proc.pid), "--duration", str(seconds)]
    kind = "raw" if svg.endswith(".txt") else "flamegraph"
    argv += ["--rate", "200", "--nonblocking", "--format", kind, "--output", svg]
    return _Spy(argv)


class _Spy:
    def __init__(self, argv: list[str]) -> None:
        self.started = asyncio.get_running_loop().create_task(self._run(argv))

    async def _run(self, argv: list[str]) -> None:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        await proc.wait()

    async def wait(self) -> None:
        await self.started


def added(gateway: dict[str, Any], direct: dict[str, Any]) -> None:
    """Write the gateway's added latency and time to first byte, against the direct run."""
    for what in ("latency_ms", "ttfb_ms"):
        mine, theirs = gateway[what], direct[what]
        gateway["added_" + what] = {
            p: (round(mine[p] - theirs[p], 3) if mine[p] is not None and theirs[p] else None)
            for p in ("p50", "p95", "p99")
        }


def now() -> str:
    return time.strftime("%Y%m%d-%H%M%S")
