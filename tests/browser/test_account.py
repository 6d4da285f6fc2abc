"""The account: the usage meter counts each question and says when the day's quota is used up,
API keys made on the account page work with the openai package, and the password changes."""

from __future__ import annotations

import openai
import pytest
from browsing import ADMIN, USER, Site, login
from playwright.sync_api import Page, expect


def send(page: Page, question: str) -> None:
    box = page.locator("#chat-input")
    box.fill(question)
    box.press("Enter")


def test_the_meter_counts_each_question_and_the_quota_message_appears_at_the_cap(
    page: Page, site: Site
) -> None:
    admin = site.api(ADMIN[0])
    admin.put(f"/api/v1/admin/users/{USER[0]}/quota", json={"daily_requests": 2}).raise_for_status()
    login(page, *USER)
    requests = page.locator(".meter .meter-num").first
    expect(requests).to_have_text("0 / 2")

    send(page, "What is a meter?")
    expect(requests).to_have_text("1 / 2")
    expect(page.locator(".quota-notice")).to_have_count(0)

    send(page, "And a quota?")
    expect(requests).to_have_text("2 / 2")
    notice = page.locator(".quota-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("quota is used up")
    expect(notice).to_contain_text("You have used all 2 requests allowed today.")
    expect(notice).to_contain_text("It resets at")
    expect(notice).to_contain_text("(UTC)")

    # The account page says the same, with the day's numbers.
    page.goto("/account")
    expect(page.locator(".account-page .quota-notice")).to_contain_text("all 2 requests")
    expect(page.locator(".stat").filter(has_text="Requests left")).to_contain_text("0")


def test_a_key_made_on_the_account_page_works_with_the_openai_package(
    page: Page, site: Site
) -> None:
    login(page, *USER)
    page.goto("/account")
    page.get_by_label("Name of the new key").fill("laptop")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("[data-new-key]").inner_text()
    assert secret.strip() == secret and len(secret) > 20

    # The snippets name this server and this key.
    snippet = page.locator("[data-snippet=python]")
    expect(snippet).to_contain_text(f'base_url="{site.url}/v1"')
    expect(snippet).to_contain_text(f'api_key="{secret}"')
    page.get_by_role("tab", name="curl").click()
    expect(page.locator("[data-snippet=curl]")).to_contain_text(f"Bearer {secret}")
    page.get_by_role("tab", name="OPENAI_BASE_URL").click()
    expect(page.locator("[data-snippet=env]")).to_contain_text(
        f'export OPENAI_BASE_URL="{site.url}/v1"'
    )

    client = openai.OpenAI(base_url=site.url + "/v1", api_key=secret, max_retries=0)
    reply = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Hello from a key"}]
    )
    assert "Hello from a key" in (reply.choices[0].message.content or "")

    # Listed (by its start only), then revoked after a confirmation: it stops working.
    row = page.locator("tr", has_text="laptop")
    expect(row).to_contain_text(secret[:6])
    assert secret not in row.inner_text()
    row.get_by_role("button", name="Revoke key laptop").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Revoke the key “laptop”?")
    dialog.get_by_role("button", name="Revoke").click()
    expect(page.locator("tr", has_text="laptop")).to_have_count(0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}])


def test_changing_the_password(page: Page, site: Site) -> None:
    login(page, *USER)
    page.goto("/account")
    page.get_by_label("Current password").fill(USER[1])
    page.get_by_label("New password", exact=True).fill("a-new-password-2")
    page.get_by_label("New password again").fill("a-new-password-2")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator(".password-message")).to_have_text("Password changed.")

    # Still logged in on this page (its cookie was renewed), then out and in with the new one.
    page.reload()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("User name").fill(USER[0])
    page.get_by_label("Password").fill(USER[1])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    login(page, USER[0], "a-new-password-2")
    expect(page.locator("#chat-input")).to_be_visible()


def test_a_wrong_current_password_is_refused(page: Page, site: Site) -> None:
    login(page, *USER)
    page.goto("/account")
    page.get_by_label("Current password").fill("not-the-password")
    page.get_by_label("New password", exact=True).fill("a-new-password-2")
    page.get_by_label("New password again").fill("a-new-password-2")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator(".password-message")).to_have_text("The current password is wrong.")
