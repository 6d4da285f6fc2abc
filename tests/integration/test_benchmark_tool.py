"""The benchmark harness itself, run end to end in its smallest form so the tool does not rot.

Nothing here looks at how fast anything was: only that the run is complete, well formed and
that every reply it checked was right.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

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
