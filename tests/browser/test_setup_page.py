"""The first run in a browser: the setup link the server logs makes the first administrator,
who lands in the console; the same link opened again is refused, and so is a wrong one."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from browsing import Site
from playwright.sync_api import Page, expect
from support import Gateway

from chatgate.transports.native_setup import first_run


@pytest.fixture
def site(make_gateway: Callable[..., Gateway]) -> Site:
    """A server with no user at all, as after `chatgate serve` on a new database."""
    from conftest import _page_is_built

    _page_is_built()
    return Site(make_gateway())


def setup_token(site: Site) -> str:
    token = site.gateway.run(first_run(site.gateway.services).token())
    assert token is not None
    return token


def fill_setup(page: Page, name: str, password: str, again: str | None = None) -> None:
    page.get_by_label("Administrator\u2019s user name").fill(name)
    page.get_by_label("Password (8 characters or more)").fill(password)
    page.get_by_label("Password again").fill(again if again is not None else password)
    page.get_by_role("button", name="Create the administrator").click()


def test_the_setup_link_creates_the_first_admin_once_and_refuses_a_second_use(
    new_page: Callable[..., Page], site: Site, console: list[str]
) -> None:
    token = setup_token(site)
    page = new_page()

    # A wrong token is refused plainly, and nothing is created.
    page.goto("/setup?token=not-the-token")
    fill_setup(page, "boss", "boss-password-1")
    expect(page.locator(".setup-error")).to_contain_text("This setup link is not valid.")

    # Two different passwords are caught before anything is sent.
    page.goto(f"/setup?token={token}")
    fill_setup(page, "boss", "boss-password-1", again="boss-password-2")
    expect(page.locator(".setup-error")).to_contain_text("The two passwords differ.")

    fill_setup(page, "boss", "boss-password-1")
    page.wait_for_url("**/admin")
    expect(page.get_by_role("navigation", name="Console sections")).to_be_visible()
    expect(page.locator(".users-table tr[data-user=boss]")).to_contain_text("Administrator")
    expect(page.get_by_role("link", name="Admin")).to_be_visible()

    # The same link, opened again in another browser, no longer works.
    other = new_page()
    other.goto(f"/setup?token={token}")
    expect(other.locator(".setup-done")).to_contain_text("An administrator exists already")
    expect(other.get_by_label("Administrator\u2019s user name")).to_have_count(0)
    again = httpx.post(
        site.url + "/api/v1/setup",
        json={"token": token, "username": "intruder", "password": "intruder-password-1"},
    )
    assert again.status_code == 409
    assert [e for e in console if e.startswith("pageerror")] == []
