"""What ``/metrics`` shows after some requests: counters by model and outcome, tokens by
direction, and the time to first token in Prometheus' cumulative buckets; and the same names
and sums when several worker processes record them (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from chatgate.core.events import Usage
from chatgate.core.metrics import (
    MULTIPROCESS_DIR,
    Metrics,
    metrics_for_process,
    share_between_workers,
)
from chatgate.core.usage import Outcome


def outcome(
    status: str, first_token_ms: float | None, prompt: int = 3, completion: int = 5
) -> Outcome:
    return Outcome(
        model="demo",
        provider="demo",
        status=status,
        usage=Usage(prompt, completion),
        counted=status == "ok",
        latency_ms=10.0,
        first_token_ms=first_token_ms,
    )


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_requests_tokens_and_first_token_buckets_add_up() -> None:
    metrics = Metrics()
    for ms in (4.0, 5.0, 40.0, 200_000.0):
        metrics.observe(outcome("ok", ms))
    metrics.observe(outcome("error", None, prompt=7, completion=0))
    seen = samples(metrics)
    assert seen["chatgate_requests_total", (("model", "demo"), ("status", "ok"))] == 4
    assert seen["chatgate_requests_total", (("model", "demo"), ("status", "error"))] == 1
    assert seen["chatgate_tokens_total", (("direction", "prompt"), ("model", "demo"))] == 19
    assert seen["chatgate_tokens_total", (("direction", "completion"), ("model", "demo"))] == 20
    bucket = "chatgate_first_token_seconds_bucket"
    assert seen[bucket, (("le", "0.005"),)] == 2  # 4 ms, and 5 ms on the bound itself
    assert seen[bucket, (("le", "0.01"),)] == 2
    assert seen[bucket, (("le", "0.05"),)] == 3
    assert seen[bucket, (("le", "120.0"),)] == 3
    assert seen[bucket, (("le", "+Inf"),)] == 4
    assert seen["chatgate_first_token_seconds_count", ()] == 4
    assert abs(seen["chatgate_first_token_seconds_sum", ()] - 200.049) < 1e-9


WORKER = """
import sys
from chatgate.core.events import Usage
from chatgate.core.metrics import metrics_for_process, share_between_workers
from chatgate.core.usage import Outcome

share_between_workers(sys.argv[1])
metrics = metrics_for_process()
for ms in map(float, sys.argv[2:]):
    metrics.observe(Outcome("demo", "demo", "ok", Usage(3, 5), True, 10.0, ms))
metrics.observe(Outcome("demo", "demo", "error", Usage(7, 0), False, 10.0, None))
"""


def run_worker(directory: Path, *first_token_ms: float) -> None:
    env = {**os.environ, MULTIPROCESS_DIR: str(directory)}
    argv = [sys.executable, "-c", WORKER, str(directory), *map(str, first_token_ms)]
    subprocess.run(argv, env=env, check=True, timeout=120)


def test_two_workers_record_into_one_scrape_with_the_same_names_as_one_process(
    tmp_path: Path,
) -> None:
    run_worker(tmp_path, 4.0, 5.0)
    run_worker(tmp_path, 40.0, 200_000.0)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    seen = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    alone = Metrics()  # the same requests in one process
    for worker in ((4.0, 5.0), (40.0, 200_000.0)):
        for ms in worker:
            alone.observe(outcome("ok", ms))
        alone.observe(outcome("error", None, prompt=7, completion=0))
    assert seen.keys() == samples(alone).keys()
    for name, value in samples(alone).items():
        assert seen[name] == pytest.approx(value), name
    assert seen["chatgate_requests_total", (("model", "demo"), ("status", "ok"))] == 4
    assert seen["chatgate_requests_total", (("model", "demo"), ("status", "error"))] == 2


def test_a_process_started_without_the_shared_directory_refuses_to_share(
    tmp_path: Path,
) -> None:
    with pytest.raises(RuntimeError, match=MULTIPROCESS_DIR):
        share_between_workers(str(tmp_path))
    assert type(metrics_for_process()) is Metrics
