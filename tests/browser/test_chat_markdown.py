"""Markdown the demo model does not write: math is typeset (KaTeX, loaded for it), tables and
headings render, and each highlighting language loads only when a reply needs it."""

from __future__ import annotations

from browsing import USER, Site, login
from faulty_upstream import FaultyUpstream, garbage_after
from playwright.sync_api import Page, Request
from test_chat_reply import REPLY, ask
from test_chat_safety import chunk, site, upstream

__all__ = ["site", "upstream"]  # the fixtures: chatgate in front of a scripted upstream

RICH = (
    "\n\n## Sums\n\nThe first $n$ odd numbers add up to $n^2$:\n\n"
    "$$\n\\sum_{k=1}^{n} (2k - 1) = n^2\n$$\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    '```rust\nfn main() { println!("hi"); }\n```\n\n'
)


def test_math_tables_and_code_render_with_what_they_need_loaded_on_demand(
    page: Page, site: Site, upstream: FaultyUpstream, foreign_requests: list[str]
) -> None:
    upstream.enqueue(garbage_after(2, chunk(RICH)))
    login(page, *USER)
    page.locator("#chat-input").wait_for()
    loaded: list[str] = []
    page.on("request", lambda r: loaded.append(r.url) if _script_or_style(r) else None)
    ask(page, "Some maths please")
    reply = page.locator(f'{REPLY}[data-finish="stop"]')
    reply.wait_for()
    reply.locator(".katex-display").wait_for()
    assert reply.locator(".katex").count() == 3, "two inline formulas and one display"
    assert "$" not in reply.locator(".md").inner_text()
    assert reply.locator("h2", has_text="Sums").count() == 1
    assert reply.locator("table td").all_inner_texts() == ["1", "2"]
    reply.locator("pre code.hljs .hljs-keyword").first.wait_for()
    names = [url.rsplit("/", 1)[-1] for url in loaded]
    assert any(n.startswith("katex") and n.endswith(".js") for n in names)
    assert any(n.startswith("rust") for n in names) and any(n.startswith("python") for n in names)
    assert not any(n.startswith(("javascript", "go-", "sql")) for n in names)
    assert foreign_requests == []


def _script_or_style(request: Request) -> bool:
    return request.resource_type in ("script", "stylesheet")
