"""Per-user limits, enforced by reservation: taken before the upstream call, settled after.

Counters live in this process (one event loop, so check-and-take is atomic), so no request
waits on the database. ``settle`` never awaits, so it is safe in the ``finally`` of a stream
that is being cancelled.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from chatgate.core.accounts import Principal
from chatgate.core.clock import Clock
from chatgate.core.errors import LimitExceeded, QuotaExhausted


@dataclass(slots=True)
class Reservation:
    quotas: QuotaService
    principal: Principal
    day: str
    settled: bool = False

    def settle(self, *, counted: bool, tokens: int) -> None:
        """Give back what was not used: the request itself when it does not count."""
        if self.settled:
            return
        self.settled = True
        self.quotas._release(self, counted=counted, tokens=tokens)


class QuotaService:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._requests: dict[tuple[int, str], int] = defaultdict(int)
        self._streams: dict[int, int] = defaultdict(int)

    async def reserve(self, principal: Principal, model: str) -> Reservation:
        limits = principal.limits
        day = self.clock.today()
        key = (principal.user_id, day)
        if limits.daily_requests is not None and self._requests[key] >= limits.daily_requests:
            raise QuotaExhausted(
                "You have used all of today's requests.",
                retry_after=self.clock.seconds_to_midnight(),
            )
        if (
            limits.max_streams is not None
            and self._streams[principal.user_id] >= limits.max_streams
        ):
            raise LimitExceeded("Too many concurrent requests.", retry_after=1.0)
        self._requests[key] += 1
        self._streams[principal.user_id] += 1
        return Reservation(self, principal, day)

    def _release(self, reservation: Reservation, *, counted: bool, tokens: int) -> None:
        user_id = reservation.principal.user_id
        self._streams[user_id] -= 1
        if not counted:
            self._requests[(user_id, reservation.day)] -= 1
