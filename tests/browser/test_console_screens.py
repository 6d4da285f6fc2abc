"""The console with a few weeks of usage behind it: request-log rows and daily totals for past
days are written by the gateway's own books (``UsageRecorder``, with a clock set to each past
moment), then the usage page must chart exactly those totals. With CHATGATE_SCREENSHOTS=1 it
also saves docs/screenshots/console-usage.png and console-users.png."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from browsing import ADMIN, Site, login
from playwright.sync_api import Locator, Page, expect

from chatgate.core.accounts import Principal
from chatgate.core.clock import Clock
from chatgate.core.events import Usage
from chatgate.core.usage import Outcome, UsageRecorder
from chatgate.services import Services

TEAM = ("alice", "bob", "chen", "dana")
MODELS = {"gpt-4o-mini": (0.15, 0.6), "qwen-plus": (0.4, 1.2), "demo": (0.0, 0.0)}
DAYS = 14


def bar(chart: Locator, series: str, day: str) -> Locator:
    """The bar Chartist drew for one series on one day: its group is named for the series
    (``ct:series-name``) and each bar carries its day as meta (``ct:meta``) and its value
    (``ct:value``). XPath, since CSS cannot match these namespaced attributes."""
    return chart.locator(
        f"xpath=.//*[local-name()='g' and @*[name()='ct:series-name']='{series}']"
        f"/*[local-name()='line' and @*[name()='ct:meta']='{day}']"
    )


def charted(chart: Locator) -> Counter[tuple[str, str]]:
    """Every bar Chartist drew in a chart, as (day, series) -> value, leaving out zeros."""
    rows = chart.locator(".ct-bar").evaluate_all(
        """bars => bars.map(b => [b.getAttribute('ct:meta'),
            b.parentNode.getAttribute('ct:series-name'), Number(b.getAttribute('ct:value'))])"""
    )
    return Counter({(day, name): value for day, name, value in rows if value})


class At(Clock):
    """A clock stopped at one moment, so that the books date a request in the past."""

    def __init__(self, timezone: str | None, at: float) -> None:
        super().__init__(timezone)
        self.at = at

    def now(self) -> float:
        return self.at


async def past_usage(services: Services, days: int = DAYS) -> Counter[tuple[str, str]]:
    """Book a varied few weeks of requests for the team, through the gateway's own recorder;
    returns the counted requests per (day, user)."""
    rng = random.Random(18)
    counted: Counter[tuple[str, str]] = Counter()
    now = time.time()
    for back in range(days - 1, -1, -1):
        for name in TEAM:
            user = await services.accounts.get_user(name)
            who = Principal(user_id=user.id, username=user.name, role=user.role)
            busy = 1 + (back + TEAM.index(name)) % 4
            for _ in range(rng.randint(2, 6) * busy):
                at = now - back * 86_400 - rng.uniform(0, 3600)
                day = services.clock.local(at).date().isoformat()
                model = rng.choice(list(MODELS))
                recorder = UsageRecorder(services.writer, At(services.settings.timezone, at))
                entry = recorder.begin(who, model, day)
                roll = rng.random()
                status, code = "ok", None
                if roll < 0.05:
                    status, code = "error", "upstream_error"
                elif roll < 0.09:
                    status, code = "error", "upstream_rate_limited"
                prompt = rng.randint(40, 900) if status == "ok" else rng.randint(40, 400)
                completion = rng.randint(60, 1400) if status == "ok" else 0
                price_in, price_out = MODELS[model]
                first = rng.uniform(180, 650) + (300 if model == "qwen-plus" else 0)
                recorder.record(
                    entry,
                    Outcome(
                        model=model,
                        provider="demo",
                        status=status,
                        usage=Usage(prompt_tokens=prompt, completion_tokens=completion),
                        counted=True,
                        latency_ms=first + completion * rng.uniform(8, 14),
                        first_token_ms=first if status == "ok" else None,
                        error_code=code,
                        cost=(prompt * price_in + completion * price_out) / 1e6,
                    ),
                )
                counted[(day, name)] += 1
    await services.writer.flush()
    return counted


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    """A server whose users have default daily limits, as most teams set."""
    return make_site(default_daily_requests=60, default_daily_tokens=80_000)


def test_the_usage_page_charts_the_weeks_the_books_hold(
    new_page: Callable[..., Page], site: Site, screenshot: Callable[[Page, str], Path]
) -> None:
    for name in TEAM[1:]:
        site.gateway.user(name, f"{name}-password-1")
    admin_api = site.api(ADMIN[0])
    admin_api.put("/api/v1/admin/users/bob/quota", json={"daily_requests": 200}).raise_for_status()
    admin_api.put("/api/v1/admin/users/chen/quota", json={"daily_tokens": 50_000})
    counted = site.gateway.run(past_usage(site.gateway.services))

    page = new_page(viewport={"width": 1600, "height": 1200})
    login(page, *ADMIN)
    today = site.gateway.services.clock.today()
    page.goto("/admin/users")
    bob = page.locator(".users-table tr[data-user=bob]")
    expect(bob).to_contain_text(f"{counted[(today, 'bob')]} / 200")
    screenshot(page, "console-users")

    page.goto("/admin/usage")
    expect(page.locator("#usage-start")).not_to_have_value("")
    first = page.locator("#usage-start").input_value()
    shown = Counter({k: n for k, n in counted.items() if k[0] >= first})
    chart = page.locator("[data-chart=requests]")
    busiest = max(shown, key=lambda k: shown[k])
    day, name = busiest
    expect(bar(chart, name, day)).to_have_attribute("ct:value", str(shown[busiest]))
    # Every user's requests on every day, bar by bar, as the books counted them.
    assert charted(chart) == shown
    expect(page.locator("[data-total=requests]")).to_have_text(f"{sum(shown.values()):,}")
    expect(page.locator("[data-chart=latency] .ct-point").first).to_be_attached()
    expect(page.locator("[data-chart=errors] .ct-bar").first).to_be_attached()
    screenshot(page, "console-usage")

    # A longer range holds every request booked.
    total = sum(counted.values())
    page.get_by_role("button", name="Last 30 days").click()
    expect(page.locator("[data-total=requests]")).to_have_text(f"{total:,}")

    # Stacked by model instead, the same requests are there, split another way.
    page.get_by_label("model").check()
    expect(
        chart.locator("xpath=.//*[@*[name()='ct:series-name']='qwen-plus']/*").first
    ).to_be_attached()
    expect(page.locator("[data-total=requests]")).to_have_text(f"{total:,}")
