"""Backoff and circuit breakers on their own, with a clock and dice the test controls."""

from __future__ import annotations

import pytest

from chatgate.core.errors import UpstreamRateLimited, UpstreamTimeout, UpstreamUnavailable
from chatgate.providers.routing import Backoff, Health
from chatgate.settings import Routing

KEY = ("primary", "gpt-4o")


class Clock:
    def __init__(self) -> None:
        self.at = 1000.0

    def __call__(self) -> float:
        return self.at


def test_backoff_doubles_up_to_its_cap_with_full_jitter() -> None:
    backoff = Backoff(Routing(retries=5, backoff_base=0.5, backoff_max=3.0), rng=lambda: 1.0)
    error = UpstreamUnavailable("down")
    assert [backoff.delay(n, error) for n in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, None]
    assert Backoff(Routing(backoff_base=0.5), rng=lambda: 0.25).delay(0, error) == 0.125


def test_backoff_waits_at_least_as_long_as_the_upstream_asked() -> None:
    backoff = Backoff(Routing(backoff_base=0.1, max_retry_wait=5), rng=lambda: 0.5)
    assert backoff.delay(0, UpstreamRateLimited("slow down", retry_after=2.5)) == 2.5


def test_backoff_moves_on_when_the_upstream_asks_for_too_long() -> None:
    backoff = Backoff(Routing(max_retry_wait=5))
    assert backoff.delay(0, UpstreamRateLimited("slow down", retry_after=60)) is None


def test_no_retries_means_no_second_try() -> None:
    assert Backoff(Routing(retries=0)).delay(0, UpstreamUnavailable("down")) is None


def test_breaker_opens_after_failures_in_a_row_and_a_success_forgets_them() -> None:
    health = Health(Routing(breaker_failures=3, breaker_cooldown=30), now=Clock())
    health.failed(KEY)
    health.failed(KEY)
    health.succeeded(KEY)
    health.failed(KEY)
    health.failed(KEY)
    assert health.acquire(KEY) and health.state(KEY) == "closed"
    health.failed(KEY)
    assert not health.acquire(KEY)
    assert health.state(KEY) == "open"
    assert health.retry_in(KEY) == pytest.approx(30)


def test_after_the_cooldown_one_probe_goes_through_and_its_verdict_counts() -> None:
    clock = Clock()
    health = Health(Routing(breaker_failures=1, breaker_cooldown=30), now=clock)
    health.failed(KEY)
    clock.at += 29.9
    assert not health.acquire(KEY)
    clock.at += 0.2
    assert health.state(KEY) == "half-open"
    assert health.acquire(KEY)
    assert not health.acquire(KEY), "only one probe at a time"
    health.failed(KEY)
    assert not health.acquire(KEY), "a failed probe rests the deployment again"
    clock.at += 30.1
    assert health.acquire(KEY)
    health.succeeded(KEY)
    assert health.acquire(KEY) and health.acquire(KEY)
    assert health.state(KEY) == "closed"


def test_a_probe_that_ends_without_a_verdict_lets_the_next_one_try() -> None:
    clock = Clock()
    health = Health(Routing(breaker_failures=1, breaker_cooldown=5), now=clock)
    health.failed(KEY)
    clock.at += 6
    assert health.acquire(KEY)
    health.release(KEY)
    assert health.acquire(KEY)


def test_an_upstream_that_asks_for_a_long_pause_is_rested_that_long() -> None:
    clock = Clock()
    health = Health(Routing(breaker_failures=10, breaker_cooldown=5), now=clock)
    health.rest(KEY, 120)
    clock.at += 100
    assert not health.acquire(KEY)
    clock.at += 21
    assert health.acquire(KEY)


def test_the_retries_of_one_request_are_one_failure() -> None:
    health = Health(Routing(breaker_failures=2, breaker_cooldown=30), now=Clock())
    health.failed(KEY)
    health.failed(KEY, again=True)
    health.failed(KEY, again=True)
    assert health.state(KEY) == "closed" and health.acquire(KEY)
    health.failed(KEY)  # a second request
    assert health.state(KEY) == "open"


def test_a_pause_the_upstream_asked_for_ends_on_time_and_is_not_a_failure() -> None:
    clock = Clock()
    health = Health(Routing(breaker_failures=1, breaker_cooldown=30), now=clock)
    health.rest(KEY, 2.0)
    assert health.state(KEY) == "resting" and not health.acquire(KEY)
    assert health.retry_in(KEY) == pytest.approx(2.0)
    clock.at += 1.99
    assert not health.admits(KEY)
    clock.at += 0.02
    assert health.admits(KEY) and health.acquire(KEY) and health.acquire(KEY)
    assert health.state(KEY) == "closed", "resting did not count towards the breaker"


def test_asking_whether_a_deployment_admits_does_not_take_the_probe() -> None:
    clock = Clock()
    health = Health(Routing(breaker_failures=1, breaker_cooldown=5), now=clock)
    health.failed(KEY)
    clock.at += 6
    assert health.admits(KEY) and health.admits(KEY)
    assert health.acquire(KEY)
    assert not health.admits(KEY), "the probe is out"


def test_a_request_that_answers_during_a_pause_does_not_end_the_pause() -> None:
    clock = Clock()
    health = Health(Routing(), now=clock)
    health.rest(KEY, 5)
    health.succeeded(KEY)
    assert not health.acquire(KEY)
    clock.at += 5
    assert health.acquire(KEY)


def test_a_deployment_that_kept_silent_is_not_asked_again() -> None:
    backoff = Backoff(Routing(retries=5))
    assert backoff.delay(0, UpstreamTimeout("stalled waiting for the first token")) is None
