"""The scenarios: what users do to a gateway, each run against the upstream directly too
where that means something (added latency is the gateway's run minus the direct one)."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.procs import (
    Proc,
    chatgate_cli,
    free_port,
    gateway_env,
    start_gateway,
    start_upstream,
)
from bench.runner import Load, Target, added, measure, now
from bench.stores import Store, open_store
from bench.upstream import INSTANT, PACED

HERE = Path(__file__).resolve().parent


class Bench:
    """The processes of one run and the results gathered so far."""

    def __init__(self, opts: argparse.Namespace, workdir: Path) -> None:
        self.opts = opts
        self.workdir = workdir
        self.started = now()
        self.results: list[dict[str, Any]] = []
        self.procs: list[Proc] = []
        self.extra_gateways: dict[str, Target] = {}
        self.rss_after: float | None = None
        self.capped_key: str | None = None
        self.fresh_keys: list[str] = []
        self.store = Store(opts.store)

    @property
    def model(self) -> str:
        return "demo" if self.opts.upstream == "demo" else INSTANT

    async def start(self) -> None:
        opts = self.opts
        self.store = await open_store(opts.store, self.started, opts.pg_admin, opts.redis_url)
        upstream = start_upstream(opts.upstream, opts.interval, self.workdir, opts.pieces)
        self.procs.append(upstream)
        await upstream.wait_ready("/v1/models")
        self.env = gateway_env(self.workdir / "data", upstream, **self.store.settings)
        if opts.workers > 1:  # at info, the log says when every worker serves
            self.env.update(CHATGATE_WORKERS=str(opts.workers), CHATGATE_LOG_LEVEL="info")
        if self.store.database_url is not None:
            chatgate_cli(self.env, "db", "upgrade")
        key = self._user("bench", daily_requests=-1)
        if "quota" in opts.scenarios:
            self.capped_key = self._user("capped", daily_requests=10)
        if "keycache" in opts.scenarios:
            self.fresh_keys = await _make_keys(
                self.workdir / "data", self.store.database_url, "bench", 2 * opts.keys
            )
        self.direct = Target("direct", upstream)
        self.gateway = await self._gateway(self.opts.client, key)

    def _user(self, name: str, *, daily_requests: int) -> str:
        chatgate_cli(self.env, "users", "create", name)
        chatgate_cli(self.env, "users", "set-quota", name, "--daily-requests", str(daily_requests))
        out = chatgate_cli(self.env, "keys", "create", "--user", name, "--name", "bench")
        return out.splitlines()[-1].strip()

    async def _gateway(self, client: str, key: str) -> Target:
        proc = start_gateway(self.env, client, self.workdir)
        self.procs.append(proc)
        await proc.wait_ready("/healthz")
        if self.opts.workers > 1:
            await proc.wait_logged("chatgate listening on")
        name = "gateway" if client == "aiohttp" else f"gateway-{client}"
        return Target(name, proc, key)

    async def extra_gateway(self, client: str) -> Target:
        if client == self.opts.client:
            return self.gateway
        if client not in self.extra_gateways:
            assert self.gateway.key is not None
            self.extra_gateways[client] = await self._gateway(client, self.gateway.key)
        return self.extra_gateways[client]

    async def transports_gateway(self) -> tuple[Proc, int]:
        """A gateway of its own for the transports: gRPC on, and the compatibility protocols'
        model (``compat_model``) the upstream's ``bench``; its gRPC port."""
        grpc_port = free_port()
        env = {**self.env, "CHATGATE_GRPC_PORT": str(grpc_port), "CHATGATE_COMPAT_MODEL": INSTANT}
        proc = start_gateway(env, self.opts.client, self.workdir, "transports")
        self.procs.append(proc)
        await proc.wait_ready("/readyz")
        return proc, grpc_port

    def stop(self) -> None:
        if self.procs[1:]:
            self.rss_after = round(self.procs[1].rss_mb(), 1)
        for proc in reversed(self.procs):
            proc.stop()

    async def close(self) -> None:
        """Stop the processes, then take down the run's store."""
        self.stop()
        await self.store.close()

    def profile_path(self, stem: str) -> str:
        """Where a profile named ``stem`` goes, in the chosen format."""
        folder = HERE / "profiles"
        folder.mkdir(exist_ok=True)
        ext = "svg" if self.opts.profile_format == "flamegraph" else "txt"
        return str(folder / f"{stem}.{ext}")

    async def run(self, target: Target, load: Load) -> dict[str, Any]:
        profile = None
        if load.scenario in self.opts.profile and target.name.startswith("gateway"):
            profile = self.profile_path(f"{load.scenario}-c{load.concurrency}-{target.name}")
        result = await measure(target, load, profile)
        self.results.append(result)
        _progress(result)
        return result

    async def pair(self, load: Load) -> None:
        """The same load against the upstream directly, then through the gateway."""
        direct = await self.run(self.direct, load)
        through = await self.run(self.gateway, load)
        added(through, direct)

    def fast(self, scenario: str, stream: bool, concurrency: int, **kw: Any) -> Load:
        opts = self.opts
        kw.setdefault("warmup", opts.warmup)
        return Load(
            scenario, stream, concurrency, opts.duration, pieces=opts.pieces, model=self.model, **kw
        )

    def paced(self, scenario: str, streams: int, **kw: Any) -> Load:
        opts = self.opts
        reply_seconds = opts.paced_pieces * opts.interval
        return Load(
            scenario,
            True,
            streams,
            duration=max(opts.duration, reply_seconds),
            pieces=opts.paced_pieces,
            model=PACED,
            ramp=opts.ramp,
            timeout=reply_seconds * 3 + 30,
            warmup=opts.warmup,
            **kw,
        )


def _progress(r: dict[str, Any]) -> None:
    print(
        f"  {r['scenario']:<14} c={r['concurrency']:<5} {r['target']:<14} "
        f"{r['rps']:>8.1f} req/s  p50 {r['latency_ms']['p50']} ms  "
        f"cpu {r['cpu_ms_per_req']} ms/req  errors {r['errors']}",
        flush=True,
    )


async def _make_keys(data_dir: Path, database_url: str | None, user: str, n: int) -> list[str]:
    """Many keys at once through the library (the CLI would start a process per key)."""
    from chatgate.services import Services
    from chatgate.settings import Settings

    settings = Settings.load(data_dir=data_dir, database_url=database_url)
    services = await Services.open(settings, start_models=False)
    try:
        return [(await services.accounts.create_key(user, label="cold"))[0] for _ in range(n)]
    finally:
        await services.close()


# ---- the scenarios ------------------------------------------------------------------------


async def json_replies(bench: Bench) -> None:
    for c in bench.opts.concurrency:
        await bench.pair(bench.fast("json", False, c))


async def streamed_replies(bench: Bench) -> None:
    for c in bench.opts.concurrency:
        await bench.pair(bench.fast("stream", True, c))


async def paced_streams(bench: Bench) -> None:
    if bench.opts.upstream != "lean":
        print("  paced: needs the lean upstream; skipped")
        return
    await bench.pair(bench.paced("paced", bench.opts.streams))


async def paced_with_storage(bench: Bench) -> None:
    """Every reply stored in a new conversation (``conversation_id: "new"``)."""
    if bench.opts.upstream != "lean":
        print("  paced-storage: needs the lean upstream; skipped")
        return
    load = bench.paced("paced-storage", bench.opts.streams, extra={"conversation_id": "new"})
    await bench.run(bench.gateway, load)


async def quota_limited(bench: Bench) -> None:
    """A user with a cap of 10 a day: all but the first ten requests get 429."""
    assert bench.capped_key is not None
    load = bench.fast("quota", False, 32, allow_quota=True, warmup=0.0)
    await bench.run(Target("gateway", bench.gateway.proc, bench.capped_key), load)


async def key_cache(bench: Bench) -> None:
    """Each key used for the first time (a database look-up), then again (from the cache)."""
    n = bench.opts.keys
    for i, c in enumerate((1, 32)):
        keys = bench.fresh_keys[i * n : (i + 1) * n]
        for name in ("keys-cold", "keys-warm"):
            load = bench.fast(name, False, c, keys=keys, max_requests=n, warmup=0.0)
            load.duration = 600.0  # bounded by max_requests
            await bench.run(bench.gateway, load)


async def client_libraries(bench: Bench) -> None:
    """The same gateway with its provider on aiohttp and on httpx, side by side."""
    targets = [await bench.extra_gateway("aiohttp"), await bench.extra_gateway("httpx")]
    loads = [bench.fast("client-json", False, c) for c in bench.opts.concurrency]
    loads += [bench.fast("client-stream", True, c) for c in bench.opts.concurrency]
    if bench.opts.upstream == "lean":
        loads.append(bench.paced("client-paced", min(256, bench.opts.streams)))
    for load in loads:
        for target in targets:
            await bench.run(target, load)


async def transports(bench: Bench) -> None:
    """The same reply over every transport the gateway speaks, against SSE's figures."""
    if bench.opts.upstream != "lean":
        print("  transports: needs the lean upstream; skipped")
        return
    from bench import transports as tx

    proc, grpc_port = await bench.transports_gateway()
    assert bench.gateway.key is not None
    compression = None if bench.opts.ws_compression == "none" else "deflate"
    gw = tx.Gateway(
        "127.0.0.1", proc.port, grpc_port, bench.gateway.key, bench.opts.pieces, compression
    )
    results = []
    for c in bench.opts.concurrency:
        for name in bench.opts.transports:
            transport = tx.TRANSPORTS[name]
            profile = None
            if "transports" in bench.opts.profile:
                profile = bench.profile_path(f"transports-{name}-c{c}")
            result = await tx.measure(
                gw, proc, transport, c, bench.opts.duration, bench.opts.warmup, profile
            )
            results.append(result)
            bench.results.append(result)
            _progress(result)
    tx.ratios(results)


RUNNERS: dict[str, Callable[[Bench], Awaitable[None]]] = {
    "json": json_replies,
    "stream": streamed_replies,
    "paced": paced_streams,
    "paced-storage": paced_with_storage,
    "quota": quota_limited,
    "keycache": key_cache,
    "clients": client_libraries,
    "transports": transports,
}
