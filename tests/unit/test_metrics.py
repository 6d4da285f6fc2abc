"""What ``/metrics`` shows after some requests: counters by model and outcome, tokens by
direction, and the time to first token in Prometheus' cumulative buckets."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from chatgate.core.events import Usage
from chatgate.core.metrics import Metrics
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
