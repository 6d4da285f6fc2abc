"""Branches in the page: regenerate a reply and move between the versions with the arrows, edit
a question into a branch of its own, and find every branch in the conversation's tree."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from browsing import USER, Site, login
from playwright.sync_api import Browser, Locator, Page, expect
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


def open_tree(page: Page) -> Locator:
    """Open the tree (its code loads then) and wait until it is fitted to the path."""
    page.locator(".btn-tree").click()
    page.locator("#tree-dialog .tree-view[data-ready='1']").wait_for()
    return page.locator("#tree-dialog .tree")


def question(tree: Locator, text: str) -> Locator:
    """The node of the question ``text`` (a node's accessible name is its role and text)."""
    return tree.get_by_role("treeitem", name=f"You: {text}", exact=True)


def test_an_edited_question_is_a_branch_found_in_the_tree(page: Page, site: Site) -> None:
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
    leaf_before = page.locator(REPLY).get_attribute("data-id")

    tree = open_tree(page)
    assert tree.locator(".tree-node.tree-user").count() == 3
    assert tree.locator(".tree-node.tree-assistant").count() == 3
    # two roots (the first question and its edit), so two edges fewer than messages
    assert tree.locator(".tree-edge").count() == 4
    on_path = [
        n.get_attribute("aria-label") or "" for n in tree.locator(".tree-node.on-path").all()
    ]
    assert len(on_path) == 2
    assert any("oranges" in label for label in on_path)
    assert not any("apples" in label or "pears" in label for label in on_path)
    current = tree.locator("[aria-current='true']")
    assert current.get_attribute("data-id") == leaf_before
    expect(current).to_be_focused()

    pears = question(tree, "And pears?")
    pears.hover()
    expect(page.locator("#tree-dialog .tree-preview")).to_contain_text("And pears?")

    pears.click()
    page.locator("#tree-dialog").wait_for(state="hidden")
    page.locator("article.msg-user", has_text="And pears?").wait_for()
    assert page.locator("article.msg-user").first.inner_text().startswith("What about apples?")
    assert page.locator("article.msg-user .sib-pos").first.inner_text() == "1 / 2"
    leaf = page.locator(REPLY).last.get_attribute("data-id")
    for _ in range(50):
        if stored_conversation(site, page)["current_leaf_id"] == leaf:
            break
        page.wait_for_timeout(100)
    assert stored_conversation(site, page)["current_leaf_id"] == leaf


def reply_to(api: httpx.Client, conversation: str, content: str, **more: str) -> dict[str, str]:
    body = {"content": content, "stream": False, **more}
    response = api.post(f"/api/v1/conversations/{conversation}/messages", json=body)
    response.raise_for_status()
    reply: dict[str, str] = response.json()
    return reply


def branch(api: httpx.Client, conversation: str, how: str, message: str, **body: str) -> None:
    """Edit a question (``how`` "edit") or regenerate a reply ("regenerate") through the API."""
    path = f"/api/v1/conversations/{conversation}/messages/{message}/{how}"
    api.post(path, json={"stream": False, **body}).raise_for_status()


def show_leaf(api: httpx.Client, conversation: str, leaf: str) -> None:
    api.patch(f"/api/v1/conversations/{conversation}", json={"current_leaf_id": leaf})


@pytest.fixture
def quick(make_site: Callable[..., Site], browser: Browser) -> Iterator[tuple[Site, Page]]:
    """A site whose demo model answers at once (conversations are made through the API), and
    a page on it."""
    site = make_site(demo_chunk_delay=0)
    context = browser.new_context(base_url=site.url, locale="en-US", color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield site, page
    context.close()


def test_arrow_keys_and_enter_in_the_tree_show_the_other_branch(
    quick: tuple[Site, Page], screenshot: Callable[..., Path]
) -> None:
    site, page = quick
    api = site.api()
    first = reply_to(api, "new", "Plan a week in Japan in April")
    conversation = first["conversation_id"]
    cities = reply_to(api, conversation, "Which cities should I see?")
    train = reply_to(api, conversation, "How do I get from Tokyo to Kyoto?")
    leaf = reply_to(api, conversation, "Is the rail pass worth it?")["message_id"]
    korea = first["message_id"]
    reply_to(api, conversation, "What about a week in Korea instead?", parent_id=korea)
    reply_to(api, conversation, "Which food should I try in Seoul?")
    blossoms = "Where can I see cherry blossoms?"
    reply_to(api, conversation, blossoms, parent_id=cities["message_id"])
    branch(api, conversation, "regenerate", train["parent_id"])
    branch(api, conversation, "edit", first["parent_id"], content="Plan a week in Japan in autumn")
    show_leaf(api, conversation, leaf)

    login(page, *USER)
    page.goto(f"/c/{conversation}")
    page.locator(".messages[data-ready='1']").wait_for()
    page.locator("article.msg-user", has_text="Is the rail pass worth it?").wait_for()
    tree = open_tree(page)
    focused = tree.locator(":focus")
    expect(focused).to_have_attribute("data-id", leaf)
    expect(focused).to_have_attribute("aria-current", "true")
    for _ in range(3):  # up to the question about the train
        page.keyboard.press("ArrowUp")
    expect(focused).to_have_attribute("aria-label", "You: How do I get from Tokyo to Kyoto?")
    page.keyboard.press("ArrowRight")  # the next question of that depth: the Korean branch's
    expect(focused).to_have_attribute("aria-label", "You: Which food should I try in Seoul?")
    page.keyboard.press("ArrowRight")  # and the next: the branch about the blossoms
    expect(focused).to_have_attribute("aria-label", f"You: {blossoms}")
    expect(page.locator("#tree-dialog .tree-preview")).to_contain_text(blossoms)
    screenshot(page, "chat-tree")
    page.keyboard.press("ArrowDown")  # its reply
    expect(focused).to_have_attribute("aria-label", re.compile("^Assistant: .*cherry blossoms"))
    blossoms_reply = focused.get_attribute("data-id")
    page.keyboard.press("Enter")

    page.locator("#tree-dialog").wait_for(state="hidden")
    page.locator("article.msg-user", has_text=blossoms).wait_for()
    assert page.locator("article.msg-user", has_text="Tokyo to Kyoto").count() == 0
    assert page.locator(REPLY).last.get_attribute("data-id") == blossoms_reply
    for _ in range(50):
        if stored_conversation(site, page)["current_leaf_id"] == blossoms_reply:
            break
        page.wait_for_timeout(100)
    assert stored_conversation(site, page)["current_leaf_id"] == blossoms_reply


def test_a_long_conversation_with_several_forks_draws_every_message_once(
    quick: tuple[Site, Page],
) -> None:
    site, page = quick
    api = site.api()
    first = reply_to(api, "new", "Question 1")
    conversation = first["conversation_id"]
    replies = [first]
    for n in range(2, 101):
        replies.append(reply_to(api, conversation, f"Question {n}"))
    # forks: a second first question (a second root), a question beside question 10 with a
    # few turns of its own and a question beside one of those, a regenerated reply at 20, and
    # a question beside question 90
    branch(api, conversation, "edit", first["parent_id"], content="Question 1b")
    side = [reply_to(api, conversation, "Side 10", parent_id=replies[8]["message_id"])]
    for n in range(11, 16):
        side.append(reply_to(api, conversation, f"Side {n}"))
    reply_to(api, conversation, "Side 12b", parent_id=side[1]["message_id"])
    branch(api, conversation, "regenerate", replies[19]["parent_id"])
    reply_to(api, conversation, "Question 90b", parent_id=replies[88]["message_id"])
    # the path shown is the main line again, down to its end
    leaf = replies[-1]["message_id"]
    show_leaf(api, conversation, leaf)
    stored = api.get(f"/api/v1/conversations/{conversation}").json()
    messages = stored["messages"]
    roots = [m for m in messages if m["parent_id"] is None]
    assert len(messages) > 200 and len(roots) == 2
    assert stored["current_leaf_id"] == leaf

    login(page, *USER)
    page.goto(f"/c/{conversation}")
    page.locator(".messages[data-ready='1']").wait_for()
    tree = open_tree(page)
    ids = tree.locator(".tree-node").evaluate_all("nodes => nodes.map(n => n.dataset.id)")
    assert sorted(ids) == sorted(m["id"] for m in messages)
    assert tree.locator(".tree-edge").count() == len(messages) - len(roots)
    assert tree.locator(".tree-node.on-path").count() == len(stored["current_path"])
    assert tree.locator(".tree-edge.on-path").count() == len(stored["current_path"]) - 1
    assert tree.locator("[aria-current='true']").get_attribute("data-id") == leaf
    # no two nodes drawn on top of each other
    spots = tree.locator(".tree-node").evaluate_all(
        "nodes => nodes.map(n => n.style.left + ',' + n.style.top)"
    )
    assert len(set(spots)) == len(messages)
    # opened at the current leaf, in view; the whole tree is further away
    leaf_node = tree.locator("[aria-current='true']")
    expect(leaf_node).to_be_in_viewport()
    first_node = tree.get_by_role("treeitem", name="You: Question 1", exact=True)
    expect(first_node).not_to_be_in_viewport()
    page.get_by_role("button", name="Whole tree").click()
    expect(first_node).to_be_in_viewport()
