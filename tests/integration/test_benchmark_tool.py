"""The benchmark harness itself, run end to end in its smallest form so the tool does not rot.

Nothing here looks at how fast anything was: only that the run is complete, well formed and
that every reply it checked was right.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis

from bench.transports import TRANSPORTS

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("json", "stream", "paced", "paced-storage", "quota", "keycache")


def test_smallest_benchmark_run_checks_every_reply_and_writes_json(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "bench", "--quick", "--scenarios", ",".join(SCENARIOS)]
    argv += ["--concurrency", "2", "--duration", "0.3", "--warmup", "0.1", "--streams", "8"]
    argv += ["--paced-pieces", "5", "--interval", "0.01", "--ramp", "0.1", "--keys", "3"]
    argv += ["--out", str(tmp_path)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    [path] = tmp_path.glob("*.json")
    report = orjson.loads(path.read_bytes())
    results = report["results"]
    assert {r["scenario"] for r in results} == set(SCENARIOS) - {"keycache"} | {
        "keys-cold",
        "keys-warm",
    }
    assert {r["target"] for r in results} == {"direct", "gateway"}
    for r in results:
        assert r["requests"] > 0 and r["errors"] == 0, r
        assert r["ok"] + r["rejected"] == r["requests"]
        assert r["cpu_ms_per_req"] is not None and r["rss_mb_peak"] > 0
    for r in results:
        if r["target"] == "gateway" and r["scenario"] in ("json", "stream", "paced"):
            assert set(r["added_latency_ms"]) == {"p50", "p95", "p99"}
    [quota] = [r for r in results if r["scenario"] == "quota"]
    assert quota["ok"] <= 10 < quota["requests"] and quota["rejected"] > 0
    assert [r["scenario"] for r in results if r["scenario"].startswith("keys")] == [
        "keys-cold",
        "keys-warm",
    ] * 2
    assert "gateway" in done.stdout and report["machine"]["cpus"] >= 1


def test_clients_scenario_runs_the_gateway_on_aiohttp_and_on_httpx(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "bench", "--quick", "--scenarios", "clients"]
    argv += ["--concurrency", "2", "--duration", "0.3", "--warmup", "0.1", "--streams", "4"]
    argv += ["--paced-pieces", "5", "--interval", "0.01", "--ramp", "0.1", "--out", str(tmp_path)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    [path] = tmp_path.glob("*.json")
    results = orjson.loads(path.read_bytes())["results"]
    runs = {(r["scenario"], r["target"]) for r in results}
    for scenario in ("client-json", "client-stream", "client-paced"):
        assert {(scenario, "gateway"), (scenario, "gateway-httpx")} <= runs
    for r in results:
        assert r["requests"] > 0 and r["errors"] == 0, r


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instruction_counter_counts_only_the_requests_it_sends() -> None:
    argv = [sys.executable, "-m", "bench.instructions", "--loads", "json,paced"]
    argv += ["--requests", "10", "--pieces", "3", "--interval", "0.01"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    counts = {line.split()[0]: float(line.split()[3]) for line in done.stdout.splitlines() if line}
    assert set(counts) == {"json", "paced"}
    # Start-up (hundreds of millions of instructions) is not counted, a request is.
    assert all(0.05 < per < 50 for per in counts.values()), counts


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instruction_counter_counts_the_bare_relay_too() -> None:
    argv = [sys.executable, "-m", "bench.instructions", "--floor", "--loads", "json,stream"]
    argv += ["--requests", "10", "--pieces", "3"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    counts = {line.split()[0]: float(line.split()[3]) for line in done.stdout.splitlines() if line}
    assert set(counts) == {"json", "stream"}
    assert all(0.05 < per < 50 for per in counts.values()), counts


def test_transports_scenario_checks_each_protocol_against_sse(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "bench", "--quick", "--scenarios", "transports"]
    argv += ["--concurrency", "2", "--duration", "0.3", "--warmup", "0.1", "--pieces", "7"]
    argv += ["--out", str(tmp_path)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    [path] = tmp_path.glob("*.json")
    results = orjson.loads(path.read_bytes())["results"]
    assert [r["transport"] for r in results] == list(TRANSPORTS)
    for r in results:
        assert r["requests"] > 0 and r["errors"] == 0 and r["ok"] == r["requests"], r
        assert r["pieces"] == 7 and r["cpu_ms_per_req"] is not None
        assert r["ttft_ms"]["p50"] is not None and r["cpu_vs_sse"] is not None
    [sse] = [r for r in results if r["transport"] == "sse"]
    assert sse["cpu_vs_sse"] == 1.0
    assert "CPU xSSE" in done.stdout


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.postgres
@pytest.mark.redis
def test_pg_redis_store_is_made_for_the_run_and_removed_after(tmp_path: Path) -> None:
    if not (_listening(5432) and _listening(6379)):
        pytest.skip("needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379")
    argv = [sys.executable, "-m", "bench", "--quick", "--store", "pg-redis"]
    argv += ["--scenarios", "json,stream,quota", "--concurrency", "2", "--duration", "0.3"]
    argv += ["--warmup", "0.1", "--out", str(tmp_path)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    [path] = tmp_path.glob("*.json")
    report = orjson.loads(path.read_bytes())
    store = report["store"]
    assert store["kind"] == "pg-redis" and store["database"].startswith("chatgate_bench_")
    assert "store pg-redis" in done.stdout
    for r in report["results"]:
        assert r["requests"] > 0 and r["errors"] == 0, r
    [quota] = [r for r in report["results"] if r["scenario"] == "quota"]
    assert quota["ok"] <= 10 < quota["requests"]

    async def leftovers() -> tuple[int, list[bytes]]:
        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
        try:
            query = "SELECT count(*) FROM pg_database WHERE datname = $1"
            databases = int(await conn.fetchval(query, store["database"]))
        finally:
            await conn.close()
        client = aioredis.Redis.from_url(store["redis_url"])
        try:
            keys = [k async for k in client.scan_iter(match=store["redis_prefix"] + "*")]
        finally:
            await client.aclose()
        return databases, keys

    assert asyncio.run(leftovers()) == (0, [])
