"""Prometheus metrics, on a registry of their own (one per app, so tests do not collide).

A request adds to plain counters; the Prometheus families are built from them only when
``/metrics`` is read. Recording a request is then a few dictionary updates, where the client
library's own metric objects take a lock and walk the histogram's buckets on every call.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from chatgate.core.usage import Outcome
from chatgate.store.writer import BatchWriter

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _Histogram:
    """Counts per bucket (not cumulative) and the sum, as Prometheus buckets are read."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative counts by upper bound, ending with ``+Inf``."""
        labels = [repr(float(bound)) for bound in self.bounds] + ["+Inf"]
        return list(zip(labels, itertools.accumulate(self.counts), strict=True))


class Metrics(Collector):
    def __init__(self, writer: BatchWriter | None = None) -> None:
        self.requests: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.tokens: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.first_token = _Histogram(_LATENCY_BUCKETS)
        self.writer = writer
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def observe(self, outcome: Outcome) -> None:
        model = outcome.model
        self.requests[model, outcome.status] += 1
        usage = outcome.usage
        if usage.prompt_tokens:
            self.tokens[model, "prompt"] += usage.prompt_tokens
        if usage.completion_tokens:
            self.tokens[model, "completion"] += usage.completion_tokens
        if outcome.first_token_ms is not None:
            self.first_token.observe(outcome.first_token_ms / 1000)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "chatgate_requests", "Chat requests by model and outcome.", labels=["model", "status"]
        )
        for (model, status), n in list(self.requests.items()):
            requests.add_metric([model, status], n)
        yield requests
        tokens = CounterMetricFamily(
            "chatgate_tokens", "Tokens by model and direction.", labels=["model", "direction"]
        )
        for (model, direction), n in list(self.tokens.items()):
            tokens.add_metric([model, direction], n)
        yield tokens
        yield HistogramMetricFamily(
            "chatgate_first_token_seconds",
            "Time to the first piece of a reply.",
            buckets=self.first_token.buckets(),
            sum_value=self.first_token.sum,
        )
        if self.writer is not None:
            yield from _writer_metrics(self.writer)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _writer_metrics(writer: BatchWriter) -> Iterator[Metric]:
    """The write-behind's state: what waits, what was written or set aside, what failed."""
    stats = writer.stats
    yield GaugeMetricFamily(
        "chatgate_writer_queue", "Database writes waiting to be written.", value=writer.pending
    )
    yield GaugeMetricFamily(
        "chatgate_writer_failing",
        "1 while database writes are failing (the queue is kept and retried).",
        value=0 if stats.failing_since is None else 1,
    )
    for name, text, value in (
        ("chatgate_writer_rows_written", "Rows written to the database.", stats.written),
        (
            "chatgate_writer_rows_set_aside",
            "Rows the database refused even bounded, set aside and logged.",
            stats.set_aside,
        ),
        (
            "chatgate_writer_flush_failures",
            "Writes of a batch that failed (the database locked or unreachable).",
            stats.flush_failures,
        ),
    ):
        yield CounterMetricFamily(name, text, value=value)
