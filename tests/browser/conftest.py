"""The page in a real browser: Debian's Chromium driven by Playwright (sync API), against a live
chatgate with the demo model on a free port and a fresh data directory.

Helpers (``login(page, user, password)``, ``Site``, ``USER``, ``ADMIN``) are in ``browsing.py``.

- ``site``: the live server (``site.url``), with an administrator and a normal user whose
  passwords are known (``ADMIN``, ``USER``); ``site.api(name)`` is an httpx client logged in as
  that user, to make conversations through the API before the page opens them.
- ``browser`` (one Chromium per test module), ``page`` (a fresh context per test, on
  ``site.url``: ``page.goto("/login")`` works), ``new_page(**context_options)`` for more
  (a phone-width viewport, a dark colour scheme, a Chinese locale).
- ``console`` and ``foreign_requests``: what the page logged, and every request it made to
  another origin (there must be none).
- ``screenshot(page, name)``, which writes
  ``docs/screenshots/NAME.png`` when ``CHATGATE_SCREENSHOTS=1`` and a temporary file otherwise.

These tests FAIL, never skip, when the page is not built or Chromium is missing: the page is
part of the product. Browser tests are plain (not ``async``) functions: Playwright's sync API
keeps an event loop running in the test's thread while a browser is open, so the browser lives
for one module at most, and async tests elsewhere in the run are not disturbed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import (
    ADMIN,
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOT_DIR,
    SCREENSHOTS,
    USER,
    Site,
)
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from support import Gateway

from chatgate.web import STATIC_DIR


def _page_is_built() -> None:
    if not (STATIC_DIR / "index.html").is_file():
        pytest.fail(
            f"the web page is not built ({STATIC_DIR} has no index.html): run "
            "`pip install -e .` with Node.js 20+ and npm, or `cd frontend && npm ci && npm run "
            "build`"
        )


@pytest.fixture
def make_site(make_gateway: Callable[..., Gateway]) -> Iterator[Callable[..., Site]]:
    """A live server with the built page; ``overrides`` are settings (say
    ``default_daily_requests=2``). The demo model streams a word every 30 ms, so that a
    reply is seen growing."""
    _page_is_built()
    made: list[Site] = []

    def make(**overrides: Any) -> Site:
        gateway = make_gateway(**{"demo_chunk_delay": 0.03, **overrides})
        gateway.user(*ADMIN, admin=True)
        gateway.user(*USER)
        site = Site(gateway)
        made.append(site)
        return site

    yield make
    for site in made:
        site.close()


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    return make_site()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    chromium = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )
    yield chromium
    chromium.close()


@pytest.fixture
def console() -> list[str]:
    """``type: text`` of every console message the test's pages logged (CSP refusals too)."""
    return []


@pytest.fixture
def foreign_requests() -> list[str]:
    """Every URL the test's pages asked for from another origin than the server's."""
    return []


@pytest.fixture
def new_page(
    browser: Browser, site: Site, console: list[str], foreign_requests: list[str]
) -> Iterator[Callable[..., Page]]:
    """Pages in fresh browser contexts (no cookies shared), English and light unless the
    context options say otherwise (``viewport``, ``color_scheme``, ``locale``...)."""
    contexts: list[BrowserContext] = []

    def own(url: str) -> bool:
        return url.startswith((site.url + "/", "data:", "blob:", "about:"))

    def make(**options: Any) -> Page:
        settings = {"locale": "en-US", "color_scheme": "light", **options}
        context = browser.new_context(base_url=site.url, **settings)
        contexts.append(context)
        context.on("request", lambda r: None if own(r.url) else foreign_requests.append(r.url))
        page = context.new_page()
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        page.set_default_timeout(15_000)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page()


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[Page, str], Path]:
    """``screenshot(page, "dark")`` saves the page's viewport; into docs/screenshots/ only when
    CHATGATE_SCREENSHOTS=1, so that ordinary runs change no file of the repository."""

    def take(page: Page, name: str) -> Path:
        folder = SCREENSHOT_DIR if SCREENSHOTS else tmp_path / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    return take
