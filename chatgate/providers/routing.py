"""When to try a deployment again, and when to leave it alone for a while.

``Backoff`` says how long to wait before the next try on the same deployment (exponential with
full jitter, or the upstream's own ``retry-after``). ``Health`` keeps one circuit breaker per
deployment: closed while it answers, open for a cooldown once ``breaker_failures`` requests in a
row have failed on it (the retries of one request are one piece of evidence, not several), then
half-open, letting a single request probe it. An upstream that asks for a pause (a 429 with
``retry-after``) is rested for exactly that long, which is not counted as a failure. A healthy
deployment costs one dictionary look-up per request.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from chatgate.core.errors import ChatgateError, UpstreamError, UpstreamTimeout
from chatgate.settings import Routing

DeploymentKey = tuple[str, str]  # provider name, upstream model


class Backoff:
    def __init__(self, config: Routing, rng: Callable[[], float] = random.random) -> None:
        self.config = config
        self._rng = rng

    def delay(self, tries: int, exc: ChatgateError) -> float | None:
        """Seconds to wait before try ``tries + 1`` of one deployment, or None to move on.

        A deployment that kept silent until a timeout is not asked again: a silent server is
        a busy or a stuck one, and asking it again would make the client wait that long once
        more for each retry. The next deployment is tried instead."""
        if tries >= self.config.retries or isinstance(exc, UpstreamTimeout):
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
    rest_until: float = 0.0


class Health:
    """One circuit breaker per deployment, keyed by provider name and upstream model."""

    def __init__(self, config: Routing, now: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.now = now
        self._breakers: dict[DeploymentKey, _Breaker] = {}

    def acquire(self, key: DeploymentKey) -> bool:
        """May a request go to this deployment now? A half-open one admits a single probe."""
        breaker = self._breakers.get(key)
        if breaker is None:
            return True
        if not self._admits(breaker):
            return False
        if breaker.open_until is not None:
            breaker.probing = True
        return True

    def admits(self, key: DeploymentKey) -> bool:
        """Would ``acquire`` let a request through now? (Asked before waiting to try again.)"""
        breaker = self._breakers.get(key)
        return breaker is None or self._admits(breaker)

    def _admits(self, breaker: _Breaker) -> bool:
        now = self.now()
        if now < breaker.rest_until:
            return False
        if breaker.open_until is None:
            return True
        return now >= breaker.open_until and not breaker.probing

    def release(self, key: DeploymentKey) -> None:
        """A probe that ended without a verdict (the client went away): let another one try."""
        breaker = self._breakers.get(key)
        if breaker is not None:
            breaker.probing = False

    def succeeded(self, key: DeploymentKey) -> None:
        breaker = self._breakers.get(key)
        if breaker is None:
            return
        if breaker.rest_until > self.now():
            # A request that was already under way answered; the pause asked for still holds.
            breaker.failures, breaker.open_until, breaker.probing = 0, None, False
        else:
            del self._breakers[key]

    def failed(self, key: DeploymentKey, *, again: bool = False) -> None:
        """Count a failed request; open the breaker at the threshold or after a failed probe.

        ``again`` is a further failure of a request already counted here (one of its retries):
        it is not more evidence against the deployment, so it only ends a probe."""
        breaker = self._breakers.setdefault(key, _Breaker())
        was_probe = breaker.probing
        breaker.probing = False
        if not again:
            breaker.failures += 1
        if was_probe or breaker.failures >= self.config.breaker_failures:
            breaker.open_until = self.now() + self.config.breaker_cooldown

    def rest(self, key: DeploymentKey, seconds: float) -> None:
        """The upstream asked for a pause (``retry-after``): no request goes there for exactly
        that long. It is not a failure: a deployment is not broken for being busy."""
        breaker = self._breakers.setdefault(key, _Breaker())
        breaker.rest_until = max(breaker.rest_until, self.now() + max(seconds, 0.0))
        breaker.probing = False

    def retry_in(self, key: DeploymentKey) -> float | None:
        """Seconds until a request may go to this deployment again; None when it may now."""
        breaker = self._breakers.get(key)
        if breaker is None:
            return None
        until = max(breaker.rest_until, breaker.open_until or 0.0)
        now = self.now()
        return until - now if until > now else (None if breaker.open_until is None else 0.0)

    def state(self, key: DeploymentKey) -> str:
        breaker = self._breakers.get(key)
        if breaker is None:
            return "closed"
        now = self.now()
        if breaker.open_until is not None and now < breaker.open_until:
            return "open"
        if now < breaker.rest_until:
            return "resting"
        return "closed" if breaker.open_until is None else "half-open"

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
