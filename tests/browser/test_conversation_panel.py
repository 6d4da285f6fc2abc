"""Per-conversation settings on the page: the model, system prompt, temperature and max tokens
are stored on the conversation; "what will be sent" shows which turns fit; export downloads the
current path as Markdown (or the whole tree as JSON); a ChatGPT export is imported by upload."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
from browsing import USER, Site, login
from playwright.sync_api import Browser, Page, expect

FIXTURES = Path(__file__).parents[1] / "fixtures"


def ask(api: httpx.Client, content: str, conversation: str, **more: str) -> dict[str, str]:
    body = {"content": content, "stream": False, **more}
    response = api.post(f"/api/v1/conversations/{conversation}/messages", json=body)
    response.raise_for_status()
    reply: dict[str, str] = response.json()
    return reply


def branched(api: httpx.Client) -> str:
    """A conversation whose current path leaves a branch out: Q1, A1, then Q3 beside Q2."""
    first = ask(api, "Which trees lose their leaves?", "new")
    conversation = first["conversation_id"]
    ask(api, "What about pines?", conversation)
    ask(api, "And maples in autumn?", conversation, parent_id=first["message_id"])
    return conversation


def open_settings(page: Page, tab: str) -> None:
    page.get_by_role("button", name="Conversation settings").click()
    page.get_by_role("dialog").get_by_role("tab", name=tab).click()


def test_export_downloads_the_markdown_of_the_current_path_and_the_tree_as_json(
    page: Page, site: Site
) -> None:
    conversation = branched(site.api())
    login(page, *USER)
    page.goto(f"/c/{conversation}")
    open_settings(page, "Export and import")

    with page.expect_download() as markdown:
        page.get_by_role("button", name="Current path as Markdown").click()
    assert markdown.value.suggested_filename.endswith(".md")
    text = Path(markdown.value.path()).read_text(encoding="utf-8")
    assert "> Which trees lose their leaves?" in text
    assert "> And maples in autumn?" in text
    assert "pines" not in text
    assert text.index("Which trees") < text.index("maples")

    with page.expect_download() as tree:
        page.get_by_role("button", name="Whole tree as JSON").click()
    assert tree.value.suggested_filename.endswith(".json")
    whole = Path(tree.value.path()).read_text(encoding="utf-8")
    json.loads(whole)
    assert "What about pines?" in whole
    assert "And maples in autumn?" in whole


def test_settings_are_stored_on_the_conversation_and_apply_to_the_next_question(
    page: Page, site: Site
) -> None:
    api = site.api()
    conversation = ask(api, "Hello there", "new")["conversation_id"]
    login(page, *USER)
    page.goto(f"/c/{conversation}")
    open_settings(page, "Settings")
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Model", exact=True).select_option("demo")
    dialog.get_by_label("System prompt").fill("Answer like a pirate.")
    dialog.get_by_label("Use the default").uncheck()
    dialog.get_by_label("Max tokens of a reply").fill("64")
    dialog.get_by_role("button", name="Save").click()
    expect(page.get_by_role("dialog")).to_have_count(0)

    stored = api.get(f"/api/v1/conversations/{conversation}").json()
    assert stored["model"] == "demo"
    assert stored["system"] == "Answer like a pirate."
    assert stored["temperature"] == 1
    assert stored["max_tokens"] == 64
    # The top bar's model picker shows the conversation's model.
    expect(page.get_by_label("Model", exact=True)).to_have_value("demo")

    # Opened again, the dialog shows what is stored.
    open_settings(page, "Settings")
    expect(dialog.get_by_label("System prompt")).to_have_value("Answer like a pirate.")
    expect(dialog.get_by_label("Max tokens of a reply")).to_have_value("64")


def test_what_will_be_sent_shows_the_turns_that_fit(
    make_site: Callable[..., Site], browser: Browser
) -> None:
    site = make_site(max_history_turns=1)
    api = site.api()
    conversation = ask(api, "The first question", "new")["conversation_id"]
    ask(api, "The second question", conversation)
    context = browser.new_context(base_url=site.url, locale="en-US")
    page = context.new_page()
    login(page, *USER)
    page.goto(f"/c/{conversation}")
    open_settings(page, "What will be sent")

    items = page.locator(".context-list li")
    expect(items).to_have_count(4)
    expect(page.locator(".context-view")).to_contain_text("2 of 4 earlier messages fit")
    expect(items.nth(0)).to_contain_text("The first question")
    expect(items.nth(0)).to_contain_text("left out")
    expect(items.nth(2)).to_contain_text("The second question")
    expect(items.nth(2)).to_contain_text("sent")
    context.close()


def test_a_chatgpt_export_is_imported_by_upload(page: Page, site: Site) -> None:
    login(page, *USER)
    open_settings(page, "Export and import")
    page.get_by_label("ChatGPT export file").set_input_files(
        str(FIXTURES / "chatgpt_conversations.json")
    )
    page.get_by_role("dialog").get_by_role("button", name="Import from ChatGPT").click()
    expect(page.locator(".import-result")).to_contain_text("Imported 2 conversations")
    page.keyboard.press("Escape")

    sidebar = page.locator("#sidebar")
    expect(sidebar.get_by_text("Boiling eggs")).to_be_visible()
    expect(sidebar.get_by_text("SQL 窗口函数")).to_be_visible()


def test_the_model_is_switched_in_the_middle_of_a_conversation(
    make_site: Callable[..., Site], browser: Browser
) -> None:
    site = make_site(model_aliases={"gpt-4": "demo"})
    api = site.api()
    conversation = ask(api, "Start with the default", "new")["conversation_id"]
    context = browser.new_context(base_url=site.url, locale="en-US")
    page = context.new_page()
    login(page, *USER)
    page.goto(f"/c/{conversation}")
    picker = page.get_by_label("Model", exact=True)
    expect(picker.locator("option")).to_have_text(["Default (demo)", "demo", "gpt-4"])

    with page.expect_response(lambda r: r.request.method == "PATCH") as saved:
        picker.select_option("gpt-4")
    assert saved.value.ok
    assert api.get(f"/api/v1/conversations/{conversation}").json()["model"] == "gpt-4"
    expect(picker).to_have_value("gpt-4")
    with page.expect_request(lambda r: r.method == "POST" and "/messages" in r.url) as sent:
        box = page.locator("#chat-input")
        box.fill("Now with the other model")
        box.press("Enter")
    assert sent.value.post_data_json["model"] == "gpt-4"
    context.close()
