"""Prometheus metrics, on a registry of their own (one per app, so tests do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from chatgate.core.usage import Outcome

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "chatgate_requests",
            "Chat requests by model and outcome.",
            ["model", "status"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "chatgate_tokens",
            "Tokens by model and direction.",
            ["model", "direction"],
            registry=self.registry,
        )
        self.first_token = Histogram(
            "chatgate_first_token_seconds",
            "Time to the first piece of a reply.",
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        # labels() validates and locks on every call; a request only needs the same few
        # children again, and Prometheus keeps every child it made anyway.
        self._children: dict[tuple[Counter, str, str], Counter] = {}

    def _child(self, counter: Counter, model: str, label: str) -> Counter:
        key = (counter, model, label)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(model, label)
        return child

    def observe(self, outcome: Outcome) -> None:
        self._child(self.requests, outcome.model, outcome.status).inc()
        usage = outcome.usage
        if usage.prompt_tokens:
            self._child(self.tokens, outcome.model, "prompt").inc(usage.prompt_tokens)
        if usage.completion_tokens:
            self._child(self.tokens, outcome.model, "completion").inc(usage.completion_tokens)
        if outcome.first_token_ms is not None:
            self.first_token.observe(outcome.first_token_ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
