"""Languages: the page follows the browser (Simplified Chinese or English), and a choice made on
the page is kept across reloads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from browsing import USER, Site, login
from playwright.sync_api import Page, expect


def test_a_chinese_browser_gets_chinese_labels(
    new_page: Callable[..., Page], site: Site, screenshot: Callable[[Page, str], Path]
) -> None:
    api = site.api()
    for question in ("今天天气怎么样", "如何用 Python 排序一个列表"):
        api.post(
            "/api/v1/conversations/new/messages", json={"content": question, "stream": False}
        ).raise_for_status()
    page = new_page(locale="zh-CN")
    page.goto("/login")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", name="欢迎回来")).to_be_visible()
    expect(page.get_by_label("用户名")).to_be_visible()
    expect(page.get_by_label("密码")).to_be_visible()
    page.get_by_label("用户名").fill(USER[0])
    page.get_by_label("密码").fill("错误的密码")
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("alert")).to_have_text("用户名或密码错误。")

    login(page, *USER)
    sidebar = page.locator("#sidebar")
    expect(sidebar.get_by_role("button", name="新对话")).to_be_visible()
    expect(sidebar.get_by_role("searchbox", name="搜索对话")).to_be_visible()
    expect(sidebar.get_by_role("heading", name="今天")).to_be_visible()
    expect(page.locator(".meter")).to_contain_text("请求")
    page.get_by_role("button", name="对话设置").click()
    expect(page.get_by_role("dialog").get_by_role("tab", name="将发送的内容")).to_be_visible()
    page.keyboard.press("Escape")
    sidebar.locator(".conv-link").first.click()
    expect(page.locator("#main")).to_contain_text("排序")
    screenshot(page, "chinese")


def test_the_language_chosen_on_the_page_is_kept(page: Page, site: Site) -> None:
    page.goto("/login")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    page.get_by_label("Language").select_option("zh")
    expect(page.get_by_role("button", name="登录")).to_be_visible()
    page.reload()
    expect(page.get_by_role("button", name="登录")).to_be_visible()

    login(page, *USER)
    page.goto("/account")
    expect(page.get_by_role("heading", name="我的账户")).to_be_visible()
    page.locator("#account-lang").select_option("en")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.reload()
    expect(page.get_by_role("button", name="New chat")).to_be_visible()
