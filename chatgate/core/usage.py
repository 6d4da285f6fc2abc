"""Usage accounting: one request-log row and the daily totals, both written behind."""

from __future__ import annotations

from dataclasses import dataclass

from chatgate.core.accounts import Principal
from chatgate.core.clock import Clock
from chatgate.core.events import Usage
from chatgate.store.tables import RequestLog
from chatgate.store.writer import BatchWriter


@dataclass(slots=True)
class Outcome:
    """How a request ended, for the books."""

    model: str
    provider: str | None
    status: str  # ok | error | cancelled | rejected
    usage: Usage
    counted: bool
    latency_ms: float
    first_token_ms: float | None = None
    error_code: str | None = None
    finish_reason: str | None = None
    cost: float = 0.0


class UsageRecorder:
    def __init__(self, writer: BatchWriter, clock: Clock) -> None:
        self._writer = writer
        self._clock = clock

    def record(self, principal: Principal, outcome: Outcome) -> None:
        key_id = principal.key_id or 0
        usage = outcome.usage
        self._writer.insert(
            RequestLog,
            {
                "created_at": self._clock.now(),
                "user_id": principal.user_id,
                "key_id": key_id,
                "model": outcome.model,
                "provider": outcome.provider,
                "status": outcome.status,
                "error_code": outcome.error_code,
                "finish_reason": outcome.finish_reason,
                "counted": outcome.counted,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cost": outcome.cost,
                "latency_ms": outcome.latency_ms,
                "first_token_ms": outcome.first_token_ms,
            },
        )
        self._writer.add_usage(
            (principal.user_id, key_id, outcome.model, self._clock.today()),
            requests=1 if outcome.counted else 0,
            errors=0 if outcome.status in ("ok", "cancelled") else 1,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost=outcome.cost,
        )
