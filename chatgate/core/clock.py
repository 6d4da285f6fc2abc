"""Time, in one injectable place: days turn at midnight in the configured zone."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo


class Clock:
    def __init__(self, timezone: str | None = None) -> None:
        self.tz: tzinfo | None = ZoneInfo(timezone) if timezone else None

    def now(self) -> float:
        return time.time()

    def local(self, at: float | None = None) -> datetime:
        stamp = self.now() if at is None else at
        if self.tz is None:
            return datetime.fromtimestamp(stamp).astimezone()
        return datetime.fromtimestamp(stamp, self.tz)

    def today(self) -> str:
        return self.local().date().isoformat()

    def seconds_to_midnight(self) -> float:
        local = self.local()
        tomorrow = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return max(0.0, (tomorrow - local).total_seconds())


class FixedClock(Clock):
    """A clock that stands still until moved; for tests and replay."""

    def __init__(self, at: float, timezone: str | None = None) -> None:
        super().__init__(timezone)
        self.at = at

    def now(self) -> float:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += seconds
