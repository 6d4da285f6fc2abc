"""Time, in one injectable place: days turn at midnight in the configured zone."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo


class Clock:
    def __init__(self, timezone: str | None = None) -> None:
        self.tz: tzinfo | None = ZoneInfo(timezone) if timezone else None
        self._day = ""
        self._day_span = (0.0, 0.0)  # [start, end) of ``_day`` as timestamps

    def now(self) -> float:
        return time.time()

    def local(self, at: float | None = None) -> datetime:
        stamp = self.now() if at is None else at
        if self.tz is None:
            return datetime.fromtimestamp(stamp).astimezone()
        return datetime.fromtimestamp(stamp, self.tz)

    def today(self) -> str:
        """The local date, worked out once a day: every request asks for it twice."""
        stamp = self.now()
        start, end = self._day_span
        if not start <= stamp < end:
            self._day, self._day_span = self._day_around(stamp)
        return self._day

    def _day_around(self, stamp: float) -> tuple[str, tuple[float, float]]:
        # Naive local times resolve through the system's zone rules, aware ones through tz's,
        # so a day that a clock change makes 23 or 25 hours long ends at its real midnight.
        local = datetime.fromtimestamp(stamp, self.tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        tomorrow = (midnight + timedelta(days=1)).replace(tzinfo=self.tz)
        return local.date().isoformat(), (midnight.timestamp(), tomorrow.timestamp())

    def zone_name(self) -> str:
        return str(self.tz) if self.tz is not None else (self.local().tzname() or "local time")

    def seconds_to_midnight(self) -> float:
        stamp = self.now()
        self.today()
        return max(0.0, self._day_span[1] - stamp)


class FixedClock(Clock):
    """A clock that stands still until moved; for tests and replay."""

    def __init__(self, at: float, timezone: str | None = None) -> None:
        super().__init__(timezone)
        self.at = at

    def now(self) -> float:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += seconds
