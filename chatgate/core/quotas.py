"""Per-user limits, enforced by reservation: taken before the upstream call, settled after.

Limits: requests and tokens per day (the day turns at midnight in the configured zone),
requests per minute, and streams open at once. The user's limits bind every request of theirs;
a key's own limits bind that key's requests as well. What the caller is told (``RateFacts``,
the x-ratelimit-* headers) describes whichever of these binds: the one with the least left.

No request waits on the database: counters live in a backend (in process by default, Redis when
several instances share the load), and a scope's counters are seeded from the usage books once
per day, on first touch, so a restart forgets nothing that was written. ``settle`` never
awaits, so it is safe in the ``finally`` of a stream that is being cancelled.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
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
    Verdict,
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


@dataclass(slots=True)
class ScopeStanding:
    """One scope's limits (None: no limit) and its counters."""

    key: str
    limits: Limits
    counts: Counts

    @property
    def key_id(self) -> int | None:
        return int(self.key[2:]) if self.key.startswith("k:") else None


@dataclass(slots=True)
class Standing:
    """Today's counters of a caller's scopes (the user's, then a key's own), and when the day
    turns: ``resets_at`` is a Unix time, ``resets_in`` seconds from now."""

    day: str
    zone: str
    resets_at: float
    resets_in: float
    scopes: list[ScopeStanding]


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
        if verdict.ok and len(scopes) == 1 and scopes[0].limits == _UNLIMITED:
            return Reservation(self, principal, day, (scopes[0].key,), _NO_FACTS)
        facts = binding_facts(scopes, verdict, now, midnight)
        if not verdict.ok:
            raise self._refusal(principal, scopes[verdict.index], verdict.failed, facts, midnight)
        return Reservation(self, principal, day, tuple(s.key for s in scopes), facts)

    async def standing(self, principal: Principal) -> Standing:
        """Where the caller stands today against each limit, taking nothing: what a meter
        shows. The counters are the ones requests are checked against."""
        now = self.clock.now()
        day, midnight = self._today(now)
        scopes = scopes_of(principal)
        for scope in scopes:
            await self._seed(scope.key, day)
        counts = await self.backend.peek(scopes, day, self.clock.now())
        return Standing(
            day=day,
            zone=self.clock.zone_name(),
            resets_at=now + midnight,
            resets_in=midnight,
            scopes=[
                ScopeStanding(scope.key, scope.limits, seen)
                for scope, seen in zip(scopes, counts, strict=True)
            ],
        )

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

    def _refusal(
        self,
        principal: Principal,
        scope: Scope,
        failed: str | None,
        facts: RateFacts,
        midnight: float,
    ) -> LimitExceeded:
        """A refusal that says which limit, how large, when it frees up and, to an
        administrator, the command that raises it."""
        limits = scope.limits
        on_key = scope.key.startswith("k:")
        who = "This API key has" if on_key else "You have"
        renews = f"the quota renews at midnight ({self.clock.zone_name()}), in {span(midnight)}."
        error: LimitExceeded
        if failed in ("daily_requests", "daily_tokens"):
            unit = "requests" if failed == "daily_requests" else "tokens"
            error = QuotaExhausted(
                f"{who} used all {getattr(limits, failed)} of today's {unit}; {renews}",
                retry_after=midnight,
                facts=facts,
            )
        elif failed == "rpm":
            wait = facts.reset_requests or 1.0
            error = LimitExceeded(
                f"Rate limit reached: {limits.rpm} requests per minute"
                f"{' for this API key' if on_key else ''}; try again in {span(wait)}.",
                retry_after=wait,
                facts=facts,
            )
        else:
            failed = "max_streams"
            error = LimitExceeded(
                f"Too many requests at once: at most {limits.max_streams} may run together"
                f"{' on this API key' if on_key else ''}.",
                retry_after=1.0,
                facts=facts,
            )
        if principal.is_admin:
            error.message += f" To raise it: {raise_command(principal, on_key, failed)}"
            error.args = (error.message,)
        return error

    async def drain(self) -> None:
        await self.backend.drain()

    async def close(self) -> None:
        await self.backend.close()


def binding_facts(
    scopes: Sequence[Scope], verdict: Verdict, now: float, midnight: float
) -> RateFacts:
    """Where the caller stands against the limits that bind: of the request limits (per day,
    per minute; the user's and the key's) and of the token budgets, the one with the least
    left. On a refusal, the limit that refused is the one described."""
    refused_at = -1 if verdict.ok else verdict.index
    requests: tuple[int, int, float] | None = None  # left (-1: the refusing one), limit, reset
    tokens: tuple[int, int] | None = None  # left, limit
    for index, scope in enumerate(scopes):
        limits, counts = scope.limits, verdict.counts[index]
        refused = verdict.failed if index == refused_at else None
        limit = limits.daily_requests
        if limit is not None:
            left = -1 if refused == "daily_requests" else max(0, limit - counts.requests)
            if requests is None or left < requests[0]:
                requests = (left, limit, midnight)
        limit = limits.rpm
        if limit is not None:
            left = -1 if refused == "rpm" else max(0, limit - counts.minute)
            if requests is None or left < requests[0]:
                oldest = counts.oldest_in_minute
                requests = (left, limit, max(0.0, oldest + MINUTE - now) if oldest else 0.0)
        limit = limits.daily_tokens
        if limit is not None:
            left = -1 if refused == "daily_tokens" else max(0, limit - counts.tokens)
            if tokens is None or left < tokens[0]:
                tokens = (left, limit)
    if requests is None and tokens is None:
        return _NO_FACTS
    return RateFacts(
        requests[1] if requests else None,
        max(0, requests[0]) if requests else None,
        requests[2] if requests else None,
        tokens[1] if tokens else None,
        max(0, tokens[0]) if tokens else None,
        midnight if tokens else None,
    )


def raise_command(principal: Principal, on_key: bool, limit: str) -> str:
    """The command an administrator runs to raise the limit that refused."""
    option = "--" + limit.replace("_", "-")
    if on_key:
        return f"chatgate keys set-quota {principal.key_id} {option} N"
    return f"chatgate users set-quota {principal.username} {option} N"


def span(seconds: float) -> str:
    """A wait as people read it: ``3h12m``, ``4m30s``, ``42s``."""
    whole = max(1, math.ceil(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
