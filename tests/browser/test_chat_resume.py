"""A reply the page asked for is the page's to stop, and it goes on when the page reloads: the
page that comes back shows it at its current point and follows the rest."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from browsing import USER, Site, login
from playwright.sync_api import Page
from test_chat_reply import REPLY, ask, stored_conversation


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    """The demo model at a word every 100 ms: slow enough to act in the middle of a reply."""
    return make_site(demo_chunk_delay=0.1)


def test_stop_ends_the_reply_and_keeps_what_arrived(page: Page, site: Site) -> None:
    login(page, *USER)
    ask(page, "Tell me something long")
    page.wait_for_function(
        "() => { const r = document.querySelector('article.msg-assistant[data-streaming] .md');"
        " return r && r.innerText.includes('built-in'); }"
    )
    page.locator(".btn-stop").click()
    reply = page.locator(f'{REPLY}[data-finish="cancelled"]')
    reply.wait_for()
    shown = reply.locator(".md").inner_text()
    assert shown.startswith('You asked: "Tell me something long"')
    assert "upstream" not in shown, "the reply was cut before its end"
    assert page.locator(".btn-send").count() == 1

    stored = stored_conversation(site, page)
    [answer] = [m for m in stored["messages"] if m["role"] == "assistant"]
    assert answer["finish_reason"] == "cancelled"
    assert answer["content"].startswith('You asked: "Tell me something long"')
    assert "upstream" not in answer["content"]


def test_reload_mid_reply_shows_the_whole_reply(page: Page, site: Site) -> None:
    login(page, *USER)
    ask(page, "Will you survive a reload?")
    page.wait_for_function(
        "() => { const r = document.querySelector('article.msg-assistant[data-streaming] .md');"
        " return r && r.innerText.includes('built-in'); }"
    )
    assert "/c/" in page.url
    page.reload()
    page.locator(f"{REPLY}[data-streaming]").wait_for()  # picked up while still running
    page.locator(f'{REPLY}[data-finish="stop"]').wait_for()
    followed = page.locator(REPLY).inner_text()

    stored = stored_conversation(site, page)
    [answer] = [m for m in stored["messages"] if m["role"] == "assistant"]
    assert answer["finish_reason"] == "stop"
    page.reload()
    page.locator(".messages[data-ready='1']").wait_for()
    page.locator(f'{REPLY}[data-finish="stop"]').wait_for()
    assert page.locator(REPLY).count() == 1
    assert page.locator(REPLY).inner_text() == followed, "the followed reply is the stored one"
    assert followed.count("You asked:") == 1 and followed.count("your own upstream") == 1
    assert shown_words(page) == markdown_words(answer["content"])


def markdown_words(source: str) -> list[str]:
    """The words a reader sees in Markdown source: no fences, list numbers or emphasis marks."""
    lines = [line for line in source.splitlines() if not line.startswith("```")]
    lines = [re.sub(r"^\d+\. ", "", line) for line in lines]
    return " ".join(lines).replace("*", "").replace("`", "").split()


def shown_words(page: Page) -> list[str]:
    text = page.evaluate(
        "() => { const md = document.querySelector('article.msg-assistant .md').cloneNode(true);"
        " md.querySelectorAll('.copy-code').forEach(b => b.remove()); return md.textContent; }"
    )
    return str(text).split()
