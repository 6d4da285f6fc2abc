"""Per-user limits, enforced by reservation: taken before the upstream call, settled after.

Limits: requests and tokens per day (the day turns at midnight in the configured zone),
requests per minute, and streams open at once. The user's limits bind every request of theirs;
a key's own limits bind that key's requests as well.

No request waits on the database: counters live in a backend (in process by default, Redis when
several instances share the load), and a scope's counters are seeded from the usage books once
per day, on first touch, so a restart forgets nothing that was written. ``settle`` never
awaits, so it is safe in the ``finally`` of a stream that is being cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from chatgate.core.accounts import Limits, Principal
from chatgate.core.clock import Clock
from chatgate.core.errors import LimitExceeded, QuotaExhausted, RateFacts
from chatgate.core.quota_backends import (
    MINUTE,
    Counts,
    MemoryQuotaBackend,
    QuotaBackend,
    Scope,
)

# (scope key, day) -> (counted requests, tokens) already on the books for that day
Seeder = Callable[[str, str], Awaitable[tuple[int, int]]]


@dataclass(slots=True)
class Reservation:
    quotas: QuotaService
    principal: Principal
    day: str
    scopes: tuple[str, ...] = ()
    facts: RateFacts = field(default_factory=RateFacts)
    settled: bool = False

    def settle(self, *, counted: bool, tokens: int) -> None:
        """Give back what was not used: the request itself when it does not count."""
        if self.settled:
            return
        self.settled = True
        self.quotas.backend.release(
            self.scopes,
            self.day,
            counted=counted,
            tokens=max(0, tokens),
            now=self.quotas.clock.now(),
        )


_UNLIMITED = Limits()
_NO_FACTS = RateFacts()


def scopes_of(principal: Principal) -> list[Scope]:
    scopes = [Scope(f"u:{principal.user_id}", principal.limits)]
    if principal.key_id is not None and principal.key_limits != _UNLIMITED:
        scopes.append(Scope(f"k:{principal.key_id}", principal.key_limits))
    return scopes


class QuotaService:
    def __init__(
        self,
        clock: Clock,
        backend: QuotaBackend | None = None,
        seeder: Seeder | None = None,
    ) -> None:
        self.clock = clock
        self.backend: QuotaBackend = backend or MemoryQuotaBackend()
        self._seeder = seeder
        self._seeded: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._seeded_day = ""
        self._day = ("", 0.0, 0.0)  # name, when it was worked out, when it ends

    def _today(self, now: float) -> tuple[str, float]:
        """Today's name and the seconds left in it; worked out again only when a day turns
        (time zones make this the costly part of a reservation)."""
        name, since, ends = self._day
        if not since <= now < ends:
            name, ends = self.clock.today(), now + self.clock.seconds_to_midnight()
            self._day = (name, now, ends)
        return name, ends - now

    async def reserve(self, principal: Principal, model: str) -> Reservation:
        """Take one request from every limit that applies, or raise the 429 that applies."""
        now = self.clock.now()
        day, midnight = self._today(now)
        scopes = scopes_of(principal)
        if self._seeder is not None:
            waited = False
            for scope in scopes:
                loaded = self._seeded.get((scope.key, day))  # only a success stays there
                if loaded is None or not loaded.done():
                    await self._seed(scope.key, day)
                    waited = True
            if waited:
                now = self.clock.now()
                midnight = self._today(now)[1]
        verdict = await self.backend.take(scopes, day, now)
        scope = scopes[verdict.index]
        if verdict.ok and scope.limits == _UNLIMITED:
            return Reservation(self, principal, day, tuple(s.key for s in scopes), _NO_FACTS)
        facts = self._facts(
            scope.limits, verdict.counts[verdict.index], now, midnight, verdict.failed
        )
        if not verdict.ok:
            raise self._refusal(verdict.failed, scope.limits, facts, midnight)
        return Reservation(self, principal, day, tuple(s.key for s in scopes), facts)

    async def _seed(self, scope: str, day: str) -> None:
        """Load a scope's day from the books once; everyone else waits for that one load."""
        if self._seeder is None:
            return
        if day != self._seeded_day:
            self._seeded = {k: v for k, v in self._seeded.items() if k[1] >= day}
            self._seeded_day = day
        pending = self._seeded.get((scope, day))
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._seeded[(scope, day)] = pending
            try:
                requests, tokens = await self._seeder(scope, day)
                await self.backend.seed(scope, day, requests, tokens)
            except BaseException as exc:
                del self._seeded[(scope, day)]
                pending.set_exception(exc)
                pending.exception()  # retrieved here; waiters re-raise it
                raise
            pending.set_result(None)
        await pending

    def _facts(
        self, limits: Limits, counts: Counts, now: float, midnight: float, failed: str | None
    ) -> RateFacts:
        minute_reset = (
            max(0.0, counts.oldest_in_minute + MINUTE - now) if counts.oldest_in_minute else 0.0
        )
        limit: int | None
        if limits.rpm is not None and (failed == "rpm" or limits.daily_requests is None):
            limit, used, reset = limits.rpm, counts.minute, minute_reset
        else:
            limit, used, reset = limits.daily_requests, counts.requests, midnight
        tokens = limits.daily_tokens
        return RateFacts(
            limit_requests=limit,
            remaining_requests=max(0, limit - used) if limit is not None else None,
            reset_requests=reset if limit is not None else None,
            limit_tokens=tokens,
            remaining_tokens=max(0, tokens - counts.tokens) if tokens is not None else None,
            reset_tokens=midnight if tokens is not None else None,
        )

    def _refusal(
        self, failed: str | None, limits: Limits, facts: RateFacts, midnight: float
    ) -> LimitExceeded:
        zone = self.clock.zone_name()
        if failed == "daily_requests":
            return QuotaExhausted(
                "You have used all of today's requests.",
                retry_after=midnight,
                facts=facts,
            )
        if failed == "daily_tokens":
            return QuotaExhausted(
                f"You have used all of today's tokens; the quota renews at midnight ({zone}).",
                retry_after=midnight,
                facts=facts,
            )
        if failed == "rpm":
            return LimitExceeded(
                f"Rate limit reached: {limits.rpm} requests per minute.",
                retry_after=facts.reset_requests or 1.0,
                facts=facts,
            )
        return LimitExceeded(
            f"Too many requests at once: at most {limits.max_streams} may run together.",
            retry_after=1.0,
            facts=facts,
        )

    async def drain(self) -> None:
        await self.backend.drain()

    async def close(self) -> None:
        await self.backend.close()
