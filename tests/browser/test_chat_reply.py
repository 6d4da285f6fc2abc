"""Chatting in the page: a reply grows as Markdown while it streams, can be stopped, and
survives a reload; the input behaves like a chat's; a phone-width screen works too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from browsing import USER, Site, login
from playwright.sync_api import Page

REPLY = "article.msg-assistant"


def ask(page: Page, question: str) -> None:
    page.locator("#chat-input").fill(question)
    page.locator("#chat-input").press("Enter")


def stored_conversation(site: Site, page: Page) -> dict[str, Any]:
    conversation_id = page.url.rsplit("/c/", 1)[1]
    body: dict[str, Any] = site.api().get(f"/api/v1/conversations/{conversation_id}").json()
    return body


def test_a_reply_grows_as_rendered_markdown_with_a_list_and_highlighted_code(
    page: Page,
    site: Site,
    console: list[str],
    foreign_requests: list[str],
    screenshot: Callable[..., Path],
) -> None:
    login(page, *USER)
    ask(page, "Show me a small Python function")
    reply = page.locator(REPLY).last
    page.wait_for_function(
        "() => { const r = document.querySelector('article.msg-assistant[data-streaming]');"
        " return r && r.innerText.trim().length > 0; }"
    )
    first = reply.locator(".md").inner_html()
    page.wait_for_function(
        "first => { const r = document.querySelector('article.msg-assistant[data-streaming] .md');"
        " return r && r.innerHTML !== first; }",
        arg=first,
    )
    assert reply.get_attribute("data-streaming") == "1", "the second look was still mid-reply"
    page.locator(f'{REPLY}[data-finish="stop"]').wait_for()

    assert reply.locator("ol > li").count() == 3
    assert reply.locator("strong", has_text="demo").count() == 1
    code = reply.locator("pre code.hljs")
    code.wait_for()
    assert code.locator(".hljs-keyword", has_text="def").count() == 1
    assert reply.locator("pre .copy-code").count() == 1
    text = reply.inner_text()
    assert "**" not in text and "```" not in text, "no raw Markdown is left"
    assert page.url.startswith(site.url + "/c/")
    assert page.locator(".messages[data-ready='1']").count() == 1
    assert foreign_requests == []
    assert [line for line in console if "Content Security Policy" in line] == []
    screenshot(page, "chat-light")


def test_enter_sends_and_shift_enter_adds_a_line(page: Page, site: Site) -> None:
    login(page, *USER)
    box = page.locator("#chat-input")
    box.fill("first line")
    box.press("Shift+Enter")
    box.type("second line")
    assert box.input_value() == "first line\nsecond line"
    assert page.locator("article.msg").count() == 0
    box.press("Enter")
    page.locator(f'{REPLY}[data-finish="stop"]').wait_for()
    assert page.locator("article.msg-user .user-text").inner_text() == "first line\nsecond line"
    assert box.input_value() == ""


def test_a_phone_width_screen_can_chat(
    new_page: Callable[..., Page], site: Site, screenshot: Callable[..., Path]
) -> None:
    page = new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    login(page, *USER)
    box = page.locator("#chat-input")
    assert box.is_visible()
    ask(page, "Hello from a phone")
    page.locator(f'{REPLY}[data-finish="stop"]').wait_for()
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], "nothing sticks out sideways"
    send = page.locator(".btn-send").bounding_box()
    assert (
        send is not None and send["x"] + send["width"] <= 390 and send["y"] + send["height"] <= 844
    )
    screenshot(page, "chat-phone")


def test_the_dark_theme_follows_the_system(
    new_page: Callable[..., Page], site: Site, screenshot: Callable[..., Path]
) -> None:
    page = new_page(color_scheme="dark")
    login(page, *USER)
    ask(page, "Show me code in the dark")
    page.locator(f'{REPLY}[data-finish="stop"]').wait_for()
    page.locator(f"{REPLY} pre code.hljs").wait_for()
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    channels = [int(c) for c in background[background.index("(") + 1 : -1].split(",")[:3]]
    assert max(channels) < 80, background
    screenshot(page, "chat-dark")
