"""A one-time password in the browser: an administrator adds a user, whose first login asks
for a new password before anything else; with it they chat, and the one-time password no longer
logs in. The form reads in Chinese for a Chinese browser."""

from __future__ import annotations

from collections.abc import Callable

from browsing import ADMIN, Site, login
from playwright.sync_api import Page, expect

REPLY = "article.msg-assistant"


def log_in_once(page: Page, user: str, password: str) -> None:
    page.goto("/login")
    page.locator("#login-username").fill(user)
    page.locator("#login-password").fill(password)
    page.locator("#login-password").press("Enter")


def test_a_new_user_must_choose_a_password_before_chatting(
    new_page: Callable[..., Page], site: Site
) -> None:
    admin = new_page()
    login(admin, *ADMIN)
    admin.get_by_role("link", name="Admin").click()
    admin.get_by_placeholder("User name").fill("nina")
    expect(admin.get_by_label("One-time: the user must choose a new password")).to_be_checked()
    admin.get_by_role("button", name="Add", exact=True).click()
    shown = admin.locator("[data-new-password]")
    expect(shown).to_be_visible()
    one_time = shown.inner_text().strip()
    row = admin.locator(".users-table tr[data-user=nina]")
    expect(row.locator("[data-must-change]")).to_have_text("Password not changed yet")

    # The first login shows the new-password form, and nothing of the chat.
    user = new_page()
    log_in_once(user, "nina", one_time)
    form = user.get_by_role("region", name="Choose a new password")
    expect(form).to_be_visible()
    expect(form).to_contain_text("one-time password")
    expect(user.get_by_label("New password", exact=True)).to_be_focused()
    expect(user.locator("#chat-input")).to_have_count(0)
    # The browser holds no login yet: another tab would land on the login page.
    assert user.request.get("/api/v1/auth/me").status == 401

    user.get_by_label("New password", exact=True).fill(one_time)
    user.get_by_label("New password again").fill(one_time)
    user.get_by_role("button", name="Save and continue").click()
    expect(form.get_by_role("alert")).to_have_text(
        "Choose a password other than the one-time password."
    )
    user.get_by_label("New password", exact=True).fill("nina-own-password-1")
    user.get_by_label("New password again").fill("nina-own-password-1")
    user.get_by_role("button", name="Save and continue").click()
    user.wait_for_url(lambda url: not url.rstrip("/").endswith("/login"))
    box = user.locator("#chat-input")
    box.fill("Hello after the first login?")
    box.press("Enter")
    expect(user.locator(f'{REPLY}[data-finish="stop"]')).to_have_count(1)

    admin.reload()
    expect(admin.locator(".users-table tr[data-user=nina]")).to_be_visible()
    expect(admin.locator(".users-table tr[data-user=nina] [data-must-change]")).to_have_count(0)

    # The one-time password is gone; the chosen one is the password now.
    again = new_page()
    log_in_once(again, "nina", one_time)
    expect(again.locator(".login-error")).to_contain_text("Wrong user name or password.")
    login(again, "nina", "nina-own-password-1")
    expect(again.locator("#chat-input")).to_be_visible()


def test_the_new_password_form_reads_in_chinese(new_page: Callable[..., Page], site: Site) -> None:
    reset = site.api(ADMIN[0]).patch("/api/v1/admin/users/alice", json={"generate_password": True})
    one_time = reset.json()["password"]
    page = new_page(locale="zh-CN")
    log_in_once(page, "alice", one_time)
    form = page.get_by_role("region", name="设置新密码")
    expect(form).to_be_visible()
    expect(form).to_contain_text("一次性密码")
    expect(page.get_by_label("新密码", exact=True)).to_be_visible()
    expect(page.get_by_label("再次输入新密码")).to_be_visible()
    expect(page.get_by_role("button", name="保存并继续")).to_be_visible()
