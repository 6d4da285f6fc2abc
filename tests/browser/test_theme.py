"""Light and dark: the page follows the system's colour scheme until the user picks one, and
the choice is kept."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from browsing import USER, Site, login
from playwright.sync_api import Page, expect

BACKGROUND = "() => getComputedStyle(document.body).backgroundColor"


def conversations(api: httpx.Client) -> str:
    """A few conversations to show; the id of the last one."""
    last = ""
    for title, question in (
        ("Sorting in Python", "How do I sort a list of tuples by the second item?"),
        ("Binary trees", "Explain binary trees with an example"),
        ("Autumn haiku", "Write a haiku about autumn"),
    ):
        made = api.post("/api/v1/conversations", json={"title": title})
        made.raise_for_status()
        last = made.json()["id"]
        api.post(
            f"/api/v1/conversations/{last}/messages", json={"content": question, "stream": False}
        ).raise_for_status()
    return last


def test_the_page_follows_the_system_and_keeps_a_chosen_theme(
    new_page: Callable[..., Page], site: Site, screenshot: Callable[[Page, str], Path]
) -> None:
    opened = conversations(site.api())
    page = new_page(color_scheme="dark")
    login(page, *USER)
    page.goto(f"/c/{opened}")
    expect(page.locator("#sidebar .conv-link")).to_have_count(3)
    assert page.evaluate(BACKGROUND) == "rgb(33, 33, 33)"
    screenshot(page, "dark")

    page.goto("/account")
    page.locator("#account-theme").select_option("light")
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    assert page.evaluate(BACKGROUND) == "rgb(255, 255, 255)"
    page.goto(f"/c/{opened}")
    expect(page.locator("#sidebar .conv-link")).to_have_count(3)
    assert page.evaluate(BACKGROUND) == "rgb(255, 255, 255)"
    screenshot(page, "light")

    page.goto("/account")
    page.locator("#account-theme").select_option("system")
    expect(page.locator("html")).not_to_have_attribute("data-theme", "light")
    assert page.evaluate(BACKGROUND) == "rgb(33, 33, 33)"
