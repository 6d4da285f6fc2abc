"""Keyboard shortcuts: `?` lists them in a dialog that keeps focus and gives it back on Esc;
Ctrl-K searches, Ctrl-Shift-O starts a new chat, Ctrl-Shift-S hides the sidebar, Shift-Esc
goes back to the message box."""

from __future__ import annotations

import re

from browsing import USER, Site, login
from playwright.sync_api import Page, expect


def test_question_mark_lists_the_shortcuts_and_esc_gives_focus_back(page: Page, site: Site) -> None:
    login(page, *USER)
    new_chat = page.locator("#sidebar").get_by_role("button", name="New chat")
    new_chat.focus()
    page.keyboard.press("?")

    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_visible()
    for label in ("Search conversations", "New chat", "Show or hide the sidebar"):
        expect(dialog).to_contain_text(label)
    # Focus stays inside the dialog while it is open.
    for _ in range(4):
        page.keyboard.press("Tab")
        assert page.evaluate("() => !!document.activeElement.closest('dialog[open]')")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(new_chat).to_be_focused()


def test_typing_a_question_mark_in_the_message_box_types_it(page: Page, site: Site) -> None:
    login(page, *USER)
    box = page.locator("#chat-input")
    box.click()
    page.keyboard.type("why?")
    expect(box).to_have_value("why?")
    expect(page.get_by_role("dialog")).to_have_count(0)


def test_keys_for_search_new_chat_the_sidebar_and_the_message_box(page: Page, site: Site) -> None:
    api = site.api()
    reply = api.post(
        "/api/v1/conversations/new/messages", json={"content": "A first talk", "stream": False}
    ).json()
    login(page, *USER)
    page.goto(f"/c/{reply['conversation_id']}")
    expect(page.locator("#main")).to_contain_text("A first talk")

    page.keyboard.press("Control+k")
    expect(page.get_by_role("searchbox", name="Search conversations")).to_be_focused()

    page.keyboard.press("Shift+Escape")
    expect(page.locator("#chat-input")).to_be_focused()

    page.keyboard.press("Control+Shift+O")
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("#chat-input")).to_be_focused()

    sidebar = page.locator("#sidebar")
    expect(sidebar).to_be_visible()
    page.keyboard.press("Control+Shift+S")
    expect(sidebar).to_be_hidden()
    page.keyboard.press("Control+Shift+S")
    expect(sidebar).to_be_visible()
