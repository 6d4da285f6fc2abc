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

    def observe(self, outcome: Outcome) -> None:
        self.requests.labels(outcome.model, outcome.status).inc()
        if outcome.usage.prompt_tokens:
            self.tokens.labels(outcome.model, "prompt").inc(outcome.usage.prompt_tokens)
        if outcome.usage.completion_tokens:
            self.tokens.labels(outcome.model, "completion").inc(outcome.usage.completion_tokens)
        if outcome.first_token_ms is not None:
            self.first_token.observe(outcome.first_token_ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
