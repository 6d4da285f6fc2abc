"""Where quota counters live: the contract every store of counters keeps, and the in-process one.

A backend checks every limit of every scope of a request and, only if all pass, takes one of
each, in one atomic step. In process that is a function with no ``await`` in it (one event loop
runs one task at a time); in Redis it is one Lua script (``core/quota_redis.py``). ``release``
never waits, so it is safe in the ``finally`` of a stream that is being cancelled.

A scope is one set of counters: a user (``u:ID``) or a key (``k:ID``). Per scope and day they
hold counted requests and tokens; per scope, the requests of the last minute and the streams
open now.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from chatgate.core.accounts import Limits

MINUTE = 60.0
# The order limits are checked in: the first one that fails is the one reported.
LIMIT_ORDER = ("daily_requests", "daily_tokens", "rpm", "max_streams")


@dataclass(frozen=True, slots=True)
class Scope:
    key: str
    limits: Limits


@dataclass(slots=True)
class Counts:
    """One scope's counters as the backend saw them (after the take, when it succeeded)."""

    requests: int = 0
    tokens: int = 0
    minute: int = 0
    streams: int = 0
    oldest_in_minute: float | None = None


@dataclass(slots=True)
class Verdict:
    """What a take decided: ``failed`` names the limit and ``index`` the scope that refused."""

    ok: bool
    counts: list[Counts] = field(default_factory=list)
    failed: str | None = None
    index: int = 0


class QuotaBackend(Protocol):
    async def seed(self, scope: str, day: str, requests: int, tokens: int) -> None:
        """Start a scope's day from what is already on the books (unless it has started)."""

    async def take(self, scopes: Sequence[Scope], day: str, now: float) -> Verdict:
        """Check every limit of every scope; take one request of each only if all pass."""

    async def peek(self, scopes: Sequence[Scope], day: str, now: float) -> list[Counts]:
        """Each scope's counters as they stand, taking nothing (for showing them)."""

    def release(
        self, scopes: Sequence[str], day: str, *, counted: bool, tokens: int, now: float
    ) -> None:
        """Close a stream; give the request back unless it counts; add the tokens used."""

    async def drain(self) -> None:
        """Wait for releases still on their way to the store."""

    async def close(self) -> None: ...


def first_failure(limits: Limits, counts: Counts) -> str | None:
    """The first limit that the counts leave no room under, if any."""
    values = (counts.requests, counts.tokens, counts.minute, counts.streams)
    for name, used in zip(LIMIT_ORDER, values, strict=True):
        limit = getattr(limits, name)
        if limit is not None and used >= limit:
            return name
    return None


class MemoryQuotaBackend:
    """Counters in this process: exact for one instance, kept across restarts by seeding."""

    def __init__(self) -> None:
        self._day = ""
        self._daily: dict[str, list[int]] = {}  # scope -> [requests, tokens] of self._day
        self._minute: dict[str, deque[float]] = {}
        self._streams: dict[str, int] = {}

    def _turn(self, day: str) -> None:
        """Days only move forward; the old day's counters go, and idle minute windows."""
        if day > self._day:
            self._day = day
            self._daily = {}
            self._minute = {k: v for k, v in self._minute.items() if v}

    async def seed(self, scope: str, day: str, requests: int, tokens: int) -> None:
        self._turn(day)
        if day == self._day:
            self._daily.setdefault(scope, [requests, tokens])

    def _counts(self, scope: Scope, now: float) -> Counts:
        requests, tokens = self._daily.get(scope.key, (0, 0))
        stamps = self._minute.get(scope.key)
        if stamps is not None:
            while stamps and stamps[0] <= now - MINUTE:
                stamps.popleft()
        return Counts(
            requests=requests,
            tokens=tokens,
            minute=len(stamps) if stamps else 0,
            streams=self._streams.get(scope.key, 0),
            oldest_in_minute=stamps[0] if stamps else None,
        )

    async def peek(self, scopes: Sequence[Scope], day: str, now: float) -> list[Counts]:
        self._turn(day)
        return [self._counts(scope, now) for scope in scopes]

    async def take(self, scopes: Sequence[Scope], day: str, now: float) -> Verdict:
        self._turn(day)
        counts = [self._counts(scope, now) for scope in scopes]
        for index, (scope, seen) in enumerate(zip(scopes, counts, strict=True)):
            failed = first_failure(scope.limits, seen)
            if failed is not None:
                return Verdict(False, counts, failed, index)
        for scope, seen in zip(scopes, counts, strict=True):
            self._daily.setdefault(scope.key, [0, 0])[0] += 1
            seen.requests += 1
            if scope.limits.rpm is not None:
                self._minute.setdefault(scope.key, deque()).append(now)
                seen.minute += 1
                seen.oldest_in_minute = seen.oldest_in_minute or now
            self._streams[scope.key] = seen.streams + 1
            seen.streams += 1
        return Verdict(True, counts)

    def release(
        self, scopes: Sequence[str], day: str, *, counted: bool, tokens: int, now: float
    ) -> None:
        for scope in scopes:
            streams = self._streams.get(scope, 0) - 1
            if streams > 0:
                self._streams[scope] = streams
            else:
                self._streams.pop(scope, None)
            if day != self._day:
                continue
            daily = self._daily.setdefault(scope, [0, 0])
            if not counted:
                daily[0] = max(0, daily[0] - 1)
            daily[1] += tokens

    async def drain(self) -> None:
        return None

    async def close(self) -> None:
        return None
