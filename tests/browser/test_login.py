"""Logging in through the page: the chat opens, and a failed login says why in plain words."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from browsing import ADMIN, USER, Site, login
from playwright.sync_api import Page, expect


def test_a_user_logs_in_and_lands_on_the_chat(
    page: Page, site: Site, screenshot: Callable[[Page, str], Path]
) -> None:
    page.goto("/")
    expect(page).to_have_url(site.url + "/login")
    expect(page.get_by_role("heading", name="Welcome back")).to_be_visible()
    screenshot(page, "login")

    login(page, *USER)

    expect(page.locator("#chat-input")).to_be_visible()
    expect(page.locator(".sidebar-user")).to_contain_text(USER[0])
    # The login is a cookie the page's scripts cannot read.
    assert "chatgate_session" not in page.evaluate("document.cookie")


def test_a_wrong_password_is_said_plainly_and_the_form_stays(page: Page, site: Site) -> None:
    page.goto("/login")
    page.get_by_label("User name").fill(USER[0])
    page.get_by_label("Password").fill("not-her-password")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    expect(page).to_have_url(site.url + "/login")
    expect(page.get_by_label("User name")).to_have_value(USER[0])


def test_a_disabled_account_is_told_so(page: Page, site: Site) -> None:
    admin = site.api(ADMIN[0])
    admin.patch(f"/api/v1/admin/users/{USER[0]}", json={"disabled": True}).raise_for_status()

    page.goto("/login")
    page.get_by_label("User name").fill(USER[0])
    page.get_by_label("Password").fill(USER[1])
    page.get_by_role("button", name="Log in").click()

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("This account is disabled.")
    expect(alert).to_contain_text("administrator")
    expect(page).to_have_url(site.url + "/login")


def test_logging_out_from_the_account_page_ends_the_login(page: Page, site: Site) -> None:
    login(page, *USER)
    page.goto("/account")
    page.get_by_role("button", name="Log out").click()

    expect(page).to_have_url(site.url + "/login")
    page.goto("/account")
    expect(page).to_have_url(site.url + "/login")
