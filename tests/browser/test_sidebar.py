"""The conversation sidebar: search (Ctrl-K, Chinese too) over conversations the first page
does not show, paging on as it scrolls, and rename, pin and delete with undo."""

from __future__ import annotations

import re

import httpx
from browsing import USER, Site, login
from playwright.sync_api import Page, expect


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
    title.press("Enter")
    expect(links.first).to_have_text("Renamed talk")
    assert api.get(f"/api/v1/conversations/{third}").json()["title"] == "Renamed talk"

    # Pin: the oldest goes on top under "Pinned", and stays there after a reload.
    sidebar.get_by_role("button", name="Pin “First talk”").click()
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
