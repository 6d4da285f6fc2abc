"""The built page loads in Chromium under its strict CSP, and a user can log in."""

from __future__ import annotations

from browsing import USER, Site, login
from playwright.sync_api import Page


def test_the_page_loads_under_its_csp_and_asks_a_stranger_to_log_in(
    page: Page, site: Site, console: list[str], foreign_requests: list[str]
) -> None:
    response = page.goto("/")
    assert response is not None and response.status == 200
    assert page.title() == "chatgate"
    page.locator("#login-username").wait_for()
    assert page.url == site.url + "/login"
    assert [line for line in console if "Content Security Policy" in line] == []
    assert [line for line in console if line.startswith("pageerror")] == []
    assert foreign_requests == []


def test_a_user_logs_in_and_a_reload_keeps_them_in(page: Page, site: Site) -> None:
    login(page, *USER)
    assert page.url == site.url + "/"
    page.reload()
    page.locator(".layout").wait_for()
    assert page.locator("#login-username").count() == 0
