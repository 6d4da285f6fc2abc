"""The day a request counts against turns at local midnight, also on days a clock change
makes 23 or 25 hours long, though the clock now works the day out once and keeps it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from chatgate.core.clock import FixedClock


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Asia/Shanghai"])
def test_the_day_turns_at_local_midnight_across_clock_changes(zone: str) -> None:
    tz = ZoneInfo(zone)
    clock = FixedClock(datetime(2024, 3, 29, tzinfo=tz).timestamp(), zone)
    for _ in range(4 * 24 * 6):  # four days around the spring change, every ten minutes
        expected = datetime.fromtimestamp(clock.now(), tz)
        assert clock.today() == expected.date().isoformat()
        midnight = datetime(expected.year, expected.month, expected.day, tzinfo=tz)
        left = clock.seconds_to_midnight()
        assert 0 < left <= 25 * 3600
        assert datetime.fromtimestamp(clock.now() + left, tz).time().hour == 0
        assert clock.now() + left > midnight.timestamp()
        clock.advance(600)


def test_a_clock_moved_back_gives_the_earlier_day_again() -> None:
    clock = FixedClock(datetime(2024, 6, 2, 12, tzinfo=ZoneInfo("UTC")).timestamp(), "UTC")
    assert clock.today() == "2024-06-02"
    clock.advance(-86400)
    assert clock.today() == "2024-06-01"
