"""Prometheus metrics, on a registry of their own (one per app, so tests do not collide).

A request adds to plain counters; the Prometheus families are built from them only when
``/metrics`` is read. Recording a request is then a few dictionary updates, where the client
library's own metric objects take a lock and walk the histogram's buckets on every call.

One worker of several (``chatgate serve --workers N``) records in prometheus_client's
multiprocess mode instead (``SharedMetrics``), so that a scrape, whichever worker answers it,
shows the whole service: every worker writes its values to memory-mapped files in the directory
its supervisor made (``PROMETHEUS_MULTIPROC_DIR``), and ``/metrics`` adds up the files of all.
One process keeps the plain counters, as fast as ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
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
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""Where prometheus_client's multiprocess mode keeps each process's values: read when the
library is imported, so a worker's supervisor sets it before starting the worker."""
WRITER_SYNC_SECONDS = 1.0
"""How often a worker copies its writer's state into the shared files (the writer keeps plain
numbers; a worker that answers no scrape must still show its queue emptying)."""

_shared_dir: str | None = None


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


def share_between_workers(directory: str) -> None:
    """Make this process record into ``directory``, with the other workers of its service.

    Called in a worker before its app is built; the directory must already be this process's
    ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client chose where values live when imported)."""
    global _shared_dir
    from prometheus_client import values

    if os.environ.get(MULTIPROCESS_DIR) != directory or values.ValueClass is values.MutexValue:
        raise RuntimeError(f"{MULTIPROCESS_DIR} must be {directory} when the process starts")
    _shared_dir = directory


def metrics_for_process(writer: BatchWriter | None = None) -> Metrics:
    """The metrics of this process: shared with the other workers if it is one of several."""
    if _shared_dir is None:
        return Metrics(writer)
    return SharedMetrics(_shared_dir, writer)


class SharedMetrics(Metrics):
    """One worker's metrics in prometheus_client's multiprocess mode.

    Counters and the histogram are the library's own, whose values live in this process's
    files; ``/metrics`` reads every worker's files with ``MultiProcessCollector``. Counters
    and histograms of a worker that ended stay in the sums (what it served was served); its
    gauges go with it (``mark_process_dead``, by the supervisor): the writer's queue is summed
    over the live workers (``livesum``), its failing flag is their largest (``livemax``).
    """

    def __init__(self, directory: str, writer: BatchWriter | None = None) -> None:
        from prometheus_client.multiprocess import MultiProcessCollector

        self.writer = writer
        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry, path=directory)  # type: ignore[no-untyped-call]
        self._requests = Counter(
            "chatgate_requests",
            "Chat requests by model and outcome.",
            ["model", "status"],
            registry=None,
        )
        self._tokens = Counter(
            "chatgate_tokens",
            "Tokens by model and direction.",
            ["model", "direction"],
            registry=None,
        )
        self._first_token = Histogram(
            "chatgate_first_token_seconds",
            "Time to the first piece of a reply.",
            buckets=_LATENCY_BUCKETS,
            registry=None,
        )
        # labels() takes a lock and builds a tuple each time: its children are kept here.
        self._children: dict[tuple[Counter, str, str], Counter] = {}
        self._writer = _SharedWriterMetrics(writer) if writer is not None else None
        self._syncing: asyncio.Task[None] | None = None
        if self._writer is not None:
            with contextlib.suppress(RuntimeError):  # no event loop: copied when scraped only
                self._syncing = asyncio.get_running_loop().create_task(self._sync_writer())

    def _child(self, counter: Counter, first: str, second: str) -> Counter:
        key = (counter, first, second)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(first, second)
        return child

    def observe(self, outcome: Outcome) -> None:
        model = outcome.model
        self._child(self._requests, model, outcome.status).inc()
        usage = outcome.usage
        if usage.prompt_tokens:
            self._child(self._tokens, model, "prompt").inc(usage.prompt_tokens)
        if usage.completion_tokens:
            self._child(self._tokens, model, "completion").inc(usage.completion_tokens)
        if outcome.first_token_ms is not None:
            self._first_token.observe(outcome.first_token_ms / 1000)

    def collect(self) -> Iterator[Metric]:
        """Nothing of its own: the registry's ``MultiProcessCollector`` reads the files."""
        return iter(())

    def render(self) -> bytes:
        if self._writer is not None:
            self._writer.copy()
        return generate_latest(self.registry)

    async def _sync_writer(self) -> None:
        assert self._writer is not None
        while True:
            await asyncio.sleep(WRITER_SYNC_SECONDS)
            self._writer.copy()


class _SharedWriterMetrics:
    """The writer's state (plain numbers in ``WriterStats``) copied into shared values."""

    def __init__(self, writer: BatchWriter) -> None:
        self.writer = writer
        self.queue = Gauge(
            "chatgate_writer_queue",
            "Database writes waiting to be written.",
            registry=None,
            multiprocess_mode="livesum",
        )
        self.failing = Gauge(
            "chatgate_writer_failing",
            "1 while database writes are failing (the queue is kept and retried).",
            registry=None,
            multiprocess_mode="livemax",
        )
        self.counters = [
            Counter(name, text, registry=None)
            for name, text in (
                ("chatgate_writer_rows_written", "Rows written to the database."),
                (
                    "chatgate_writer_rows_set_aside",
                    "Rows the database refused even bounded, set aside and logged.",
                ),
                (
                    "chatgate_writer_flush_failures",
                    "Writes of a batch that failed (the database locked or unreachable).",
                ),
            )
        ]
        self.copied = [0, 0, 0, 0, 0]  # queue, failing, then the counters' totals

    def copy(self) -> None:
        """Write what changed since the last copy (a write to a shared file takes a lock)."""
        stats = self.writer.stats
        now = [
            self.writer.pending,
            0 if stats.failing_since is None else 1,
            stats.written,
            stats.set_aside,
            stats.flush_failures,
        ]
        if now == self.copied:
            return
        if now[0] != self.copied[0]:
            self.queue.set(now[0])
        if now[1] != self.copied[1]:
            self.failing.set(now[1])
        for counter, total, before in zip(self.counters, now[2:], self.copied[2:], strict=True):
            if total > before:
                counter.inc(total - before)
        self.copied = now


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
