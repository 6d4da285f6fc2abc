"""The conversation sidebar: search (Ctrl-K, Chinese too) over conversations the first page
does not show, paging on as it scrolls, and rename, pin and delete with undo."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
from browsing import USER, Site, login
from playwright.sync_api import Browser, Page, expect

from chatgate.core.clock import FixedClock

DAY = 86_400


def ask(api: httpx.Client, content: str, conversation: str = "new") -> dict[str, str]:
    """One exchange through the native API, answered whole."""
    response = api.post(
        f"/api/v1/conversations/{conversation}/messages",
        json={"content": content, "stream": False},
    )
    response.raise_for_status()
    reply: dict[str, str] = response.json()
    return reply


def titled(api: httpx.Client, title: str, question: str) -> str:
    """A conversation with a title and one exchange; its id."""
    response = api.post("/api/v1/conversations", json={"title": title})
    response.raise_for_status()
    conversation: str = response.json()["id"]
    ask(api, question, conversation)
    return conversation


def test_search_finds_an_old_conversation_by_its_words_in_english_and_chinese(
    page: Page, site: Site
) -> None:
    api = site.api()
    titled(api, "Crossing notes", "Where did the zebra cross the road?")
    titled(api, "周末计划", "今天天气很好 我们去公园散步吧")
    for n in range(35):
        titled(api, f"Filler {n:02}", f"Question number {n}")
    login(page, *USER)
    links = page.locator("#sidebar .conv-link")
    expect(links.first).to_have_text("Filler 34")
    # The first page shows the newest only: the old ones are not there before a search.
    expect(page.locator("#sidebar").get_by_text("Crossing notes")).to_have_count(0)

    page.keyboard.press("Control+k")
    search = page.get_by_role("searchbox", name="Search conversations")
    expect(search).to_be_focused()
    search.press_sequentially("zebra")
    expect(links).to_have_count(1)
    expect(links).to_have_text("Crossing notes")

    search.fill("天气")
    expect(links).to_have_count(1)
    expect(links).to_have_text("周末计划")
    links.click()
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]+$"))
    expect(page.locator("#main")).to_contain_text("今天天气很好")

    search.fill("no such words anywhere")
    expect(page.locator("#sidebar")).to_contain_text("Nothing found.")
    search.press("Escape")
    expect(search).to_have_value("")
    expect(links.first).to_have_text("Filler 34")


def test_the_list_pages_on_as_it_scrolls(page: Page, site: Site) -> None:
    api = site.api()
    for n in range(45):
        titled(api, f"Talk {n:02}", f"Question {n}")
    login(page, *USER)
    links = page.locator("#sidebar .conv-link")
    expect(links.first).to_have_text("Talk 44")
    expect(links).to_have_count(30)

    page.locator("#sidebar .sidebar-list").evaluate("list => list.scrollTo(0, list.scrollHeight)")

    expect(links).to_have_count(45)
    expect(links.last).to_have_text("Talk 00")


def test_rename_pin_and_delete_with_undo(page: Page, site: Site) -> None:
    api = site.api()
    first = titled(api, "First talk", "One")
    titled(api, "Second talk", "Two")
    third = titled(api, "Third talk", "Three")
    login(page, *USER)
    sidebar = page.locator("#sidebar")
    links = sidebar.locator(".conv-link")
    expect(links).to_have_text(["Third talk", "Second talk", "First talk"])

    # Rename: the new title is shown and stored.
    sidebar.get_by_role("button", name="Rename “Third talk”").click()
    title = sidebar.get_by_role("textbox", name="New title")
    title.fill("Renamed talk")
    # The list shows the new title at once; the test reads the stored one once it is saved.
    with page.expect_response(lambda r: r.request.method == "PATCH" and third in r.url) as saved:
        title.press("Enter")
    assert saved.value.ok
    expect(links.first).to_have_text("Renamed talk")
    assert api.get(f"/api/v1/conversations/{third}").json()["title"] == "Renamed talk"

    # Pin: the oldest goes on top under "Pinned", and stays there after a reload.
    with page.expect_response(lambda r: r.request.method == "PATCH" and first in r.url) as saved:
        sidebar.get_by_role("button", name="Pin “First talk”").click()
    assert saved.value.ok
    pinned = sidebar.locator("[data-group=pinned]")
    expect(pinned.get_by_role("heading")).to_have_text("Pinned")
    expect(pinned.locator(".conv-link")).to_have_text(["First talk"])
    expect(links).to_have_text(["First talk", "Renamed talk", "Second talk"])
    page.reload()
    expect(links).to_have_text(["First talk", "Renamed talk", "Second talk"])
    assert api.get(f"/api/v1/conversations/{first}").json()["pinned"] is True

    # Delete, then undo: nothing is lost.
    sidebar.get_by_role("button", name="Delete “Second talk”").click()
    expect(links).to_have_text(["First talk", "Renamed talk"])
    page.get_by_role("button", name="Undo").click()
    expect(links).to_have_text(["First talk", "Renamed talk", "Second talk"])

    # Delete for good: once the undo has passed, the server has deleted it.
    with page.expect_response(
        lambda r: r.request.method == "DELETE" and r.url.endswith(third), timeout=15_000
    ) as deleted:
        sidebar.get_by_role("button", name="Delete “Renamed talk”").click()
        expect(page.get_by_role("button", name="Undo")).to_be_visible()
    assert deleted.value.status == 204
    expect(page.get_by_role("button", name="Undo")).to_have_count(0)
    assert api.get(f"/api/v1/conversations/{third}").status_code == 404
    page.reload()
    expect(links).to_have_text(["First talk", "Second talk"])


def test_conversations_are_grouped_by_day_newest_first_with_pinned_ones_on_top(
    make_site: Callable[..., Site], browser: Browser, screenshot: Callable[[Page, str], Path]
) -> None:
    now = time.time()
    clock = FixedClock(now - 40 * DAY)
    site = make_site(clock=clock)
    moments = [
        (40 * DAY, "Old plans"),
        (35 * DAY, "Older notes"),
        (3 * DAY, "This week"),
        (1 * DAY, "Yesterday's question"),
        (0, "Today's question"),
    ]
    ids = {}
    for ago, title in moments:
        clock.at = now - ago
        api = site.api()
        ids[title] = titled(api, title, f"About {title.lower()}")
    api.patch(f"/api/v1/conversations/{ids['Older notes']}", json={"pinned": True})
    context = browser.new_context(base_url=site.url, locale="en-US", color_scheme="light")
    page = context.new_page()
    login(page, *USER)

    groups = page.locator("#sidebar .sidebar-group")
    expect(groups).to_have_count(5)
    expect(groups.locator("h2")).to_have_text(
        [
            "Pinned",
            "Today",
            "Yesterday",
            "Previous 7 days",
            datetime.fromtimestamp(now - 40 * DAY).strftime("%B %Y"),
        ]
    )
    expect(page.locator("#sidebar .conv-link")).to_have_text(
        ["Older notes", "Today's question", "Yesterday's question", "This week", "Old plans"]
    )
    page.locator("#sidebar .conv-link").nth(1).click()
    expect(page.locator("#main")).to_contain_text("About today's question")
    screenshot(page, "sidebar")
    context.close()


def test_on_a_phone_the_sidebar_is_a_drawer(
    new_page: Callable[..., Page], site: Site, screenshot: Callable[[Page, str], Path]
) -> None:
    api = site.api()
    titled(api, "Picnic list", "What should we bring to a picnic?")
    titled(api, "Train times", "When does the last train leave?")
    page = new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    login(page, *USER)
    sidebar = page.locator("#sidebar")
    expect(sidebar).to_be_hidden()
    expect(page.locator("#chat-input")).to_be_visible()

    toggle = page.get_by_role("button", name="Show sidebar")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(sidebar).to_be_visible()
    # It slides in; once in, it is whole on the screen.
    page.wait_for_function(
        "() => document.getElementById('sidebar').getBoundingClientRect().x >= 0"
    )
    box = sidebar.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    screenshot(page, "phone-drawer")
    # It holds the focus while open: Tab from its last control comes back to its first.
    page.locator("#sidebar .sidebar-user a").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="New chat")).to_be_focused()

    # Choosing a conversation opens it and closes the drawer.
    sidebar.get_by_role("link", name="Picnic list").click()
    expect(sidebar).to_be_hidden()
    expect(page.locator("#main")).to_contain_text("picnic")

    # Esc closes it too, and the search works inside it.
    page.get_by_role("button", name="Show sidebar").click()
    expect(sidebar).to_be_visible()
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    page.keyboard.press("Control+k")
    expect(sidebar).to_be_visible()
    page.get_by_role("searchbox", name="Search conversations").fill("train")
    expect(sidebar.locator(".conv-link")).to_have_text(["Train times"])
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], "nothing sticks out sideways"
