"""Branches in the page: regenerate a reply and move between the versions with the arrows, edit
a question into a branch of its own, and find every branch in the conversation's tree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from browsing import USER, Site, login
from playwright.sync_api import Page
from test_chat_reply import REPLY, ask, stored_conversation

DONE = f'{REPLY}:not([data-streaming])[data-finish="stop"]'


def test_regenerate_then_move_between_the_replies(page: Page, site: Site) -> None:
    login(page, *USER)
    ask(page, "Answer me twice")
    page.locator(DONE).wait_for()
    first_id = page.locator(REPLY).get_attribute("data-id")
    page.locator(f"{REPLY} .act-regenerate").click()
    page.locator(f"{REPLY} .sib-pos", has_text="2 / 2").wait_for()
    page.locator(DONE).wait_for()
    second_id = page.locator(REPLY).get_attribute("data-id")
    assert second_id and second_id != first_id and not second_id.startswith("tmp-")

    page.locator(f"{REPLY} .sib-prev").click()
    page.locator(f"{REPLY} .sib-pos", has_text="1 / 2").wait_for()
    assert page.locator(REPLY).get_attribute("data-id") == first_id
    assert page.locator(f"{REPLY} .sib-prev").is_disabled()
    # the switch is saved on the server: read it back
    for _ in range(50):
        if stored_conversation(site, page)["current_leaf_id"] == first_id:
            break
        page.wait_for_timeout(100)
    assert stored_conversation(site, page)["current_leaf_id"] == first_id

    page.locator(f"{REPLY} .sib-next").click()
    page.locator(f"{REPLY} .sib-pos", has_text="2 / 2").wait_for()
    assert page.locator(REPLY).get_attribute("data-id") == second_id
    page.reload()
    page.locator(".messages[data-ready='1']").wait_for()
    page.locator(f"{REPLY} .sib-pos", has_text="2 / 2").wait_for()


def test_an_edited_question_is_a_branch_found_in_the_tree(
    page: Page, site: Site, screenshot: Callable[..., Path]
) -> None:
    login(page, *USER)
    ask(page, "What about apples?")
    page.locator(DONE).wait_for()
    ask(page, "And pears?")
    page.wait_for_function("() => document.querySelectorAll('article.msg-assistant').length == 2")
    page.locator(DONE).last.wait_for()
    page.locator(DONE).nth(1).wait_for()

    first_question = page.locator("article.msg-user").first
    first_question.locator(".act-edit").click()
    editor = page.locator(".edit-input")
    editor.fill("What about oranges?")
    editor.press("Enter")
    page.locator("article.msg-user .sib-pos", has_text="2 / 2").wait_for()
    page.locator(DONE).wait_for()
    assert page.locator("article.msg-user").count() == 1, "the new branch has one question so far"
    assert "oranges" in page.locator(REPLY).inner_text()

    page.locator(".btn-tree").click()
    tree = page.locator("#tree-dialog .tree")
    tree.wait_for()
    questions = tree.locator(".tree-user")
    assert questions.count() == 3
    assert tree.locator(".tree-user", has_text="pears").count() == 1
    current = tree.locator(".on-path > .tree-btn")
    assert [t for t in current.all_inner_texts() if "oranges" in t]
    assert not [t for t in current.all_inner_texts() if "apples" in t]
    screenshot(page, "chat-tree")

    tree.locator(".tree-user", has_text="pears").click()
    page.locator("#tree-dialog .tree").wait_for(state="detached")
    page.locator("article.msg-user", has_text="And pears?").wait_for()
    assert page.locator("article.msg-user").first.inner_text().startswith("What about apples?")
    assert page.locator("article.msg-user .sib-pos").first.inner_text() == "1 / 2"
    leaf = page.locator(REPLY).last.get_attribute("data-id")
    for _ in range(50):
        if stored_conversation(site, page)["current_leaf_id"] == leaf:
            break
        page.wait_for_timeout(100)
    assert stored_conversation(site, page)["current_leaf_id"] == leaf
