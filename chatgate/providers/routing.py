"""When to try a deployment again, and when to leave it alone for a while.

``Backoff`` says how long to wait before the next try on the same deployment (exponential with
full jitter, or the upstream's own ``retry-after``). ``Health`` keeps one circuit breaker per
deployment: closed while it answers, open for a cooldown after it keeps failing, then half-open,
letting a single request probe it. A healthy deployment costs one dictionary look-up per request.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from chatgate.core.errors import ChatgateError, UpstreamError
from chatgate.settings import Routing

DeploymentKey = tuple[str, str]  # provider name, upstream model


class Backoff:
    def __init__(self, config: Routing, rng: Callable[[], float] = random.random) -> None:
        self.config = config
        self._rng = rng

    def delay(self, tries: int, exc: ChatgateError) -> float | None:
        """Seconds to wait before try ``tries + 1`` of one deployment, or None to move on."""
        if tries >= self.config.retries:
            return None
        hinted: float | None = getattr(exc, "retry_after", None)
        if hinted is not None and hinted > self.config.max_retry_wait:
            return None
        cap = min(self.config.backoff_max, self.config.backoff_base * 2.0**tries)
        jittered: float = cap * self._rng()
        return max(jittered, hinted) if hinted is not None else jittered


def counts_against(exc: ChatgateError) -> bool:
    """Whether a failure says something about the deployment (not about the request)."""
    return isinstance(exc, UpstreamError)


@dataclass(slots=True)
class _Breaker:
    failures: int = 0
    open_until: float | None = None
    probing: bool = False


class Health:
    """One circuit breaker per deployment, keyed by provider name and upstream model."""

    def __init__(self, config: Routing, now: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.now = now
        self._breakers: dict[DeploymentKey, _Breaker] = {}

    def acquire(self, key: DeploymentKey) -> bool:
        """May a request go to this deployment now? A half-open one admits a single probe."""
        breaker = self._breakers.get(key)
        if breaker is None or breaker.open_until is None:
            return True
        if self.now() < breaker.open_until or breaker.probing:
            return False
        breaker.probing = True
        return True

    def release(self, key: DeploymentKey) -> None:
        """A probe that ended without a verdict (the client went away): let another one try."""
        breaker = self._breakers.get(key)
        if breaker is not None:
            breaker.probing = False

    def succeeded(self, key: DeploymentKey) -> None:
        if key in self._breakers:
            del self._breakers[key]

    def failed(self, key: DeploymentKey, rest: float | None = None) -> None:
        """Count a failure; open the breaker at the threshold, after a failed probe, or when
        the upstream itself asked for ``rest`` seconds."""
        breaker = self._breakers.setdefault(key, _Breaker())
        breaker.failures += 1
        was_probe = breaker.probing
        breaker.probing = False
        cooldown = self.config.breaker_cooldown
        if rest is not None:
            breaker.open_until = self.now() + max(rest, 0.0)
        elif was_probe or breaker.failures >= self.config.breaker_failures:
            breaker.open_until = self.now() + cooldown

    def retry_in(self, key: DeploymentKey) -> float | None:
        """Seconds until an open breaker lets a probe through; None when closed."""
        breaker = self._breakers.get(key)
        if breaker is None or breaker.open_until is None:
            return None
        return max(0.0, breaker.open_until - self.now())

    def state(self, key: DeploymentKey) -> str:
        breaker = self._breakers.get(key)
        if breaker is None or breaker.open_until is None:
            return "closed"
        return "open" if self.now() < breaker.open_until else "half-open"

    def troubled(self) -> list[DeploymentKey]:
        """Deployments with a failure on record."""
        return list(self._breakers)

    def reset(self) -> None:
        """Close every breaker (an operator's "try them all again")."""
        self._breakers.clear()

    def forget(self, provider: str) -> None:
        """A provider was replaced or removed: its history no longer applies."""
        for key in [k for k in self._breakers if k[0] == provider]:
            del self._breakers[key]
