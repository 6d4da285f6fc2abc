"""Keys in the console: every user's key is listed with its owner, label and prefix; the
administrator gives one its own daily cap and revokes it after a confirmation, and the key
stops working at once."""

from __future__ import annotations

import httpx
from browsing import ADMIN, USER, Site, login
from playwright.sync_api import Page, expect


def test_an_admin_caps_and_revokes_a_users_key(page: Page, site: Site) -> None:
    made = site.api(USER[0]).post("/api/v1/keys", json={"name": "laptop"}).json()
    secret, prefix = made["key"], made["prefix"]
    models = httpx.get(site.url + "/v1/models", headers={"Authorization": f"Bearer {secret}"})
    assert models.status_code == 200

    login(page, *ADMIN)
    page.goto("/admin/keys")
    row = page.locator(f".keys-admin-table tr[data-key-id='{made['id']}']")
    expect(row).to_contain_text(USER[0])
    expect(row).to_contain_text("laptop")
    expect(row).to_contain_text(prefix)
    expect(page.locator("body")).not_to_contain_text(secret)

    row.get_by_role("button", name=f"Limits of key {prefix}").click()
    page.get_by_role("dialog").get_by_label("Requests per day").fill("5")
    page.get_by_role("dialog").get_by_role("button", name="Save").click()
    expect(row).to_contain_text("req/day 5")

    row.get_by_role("button", name=f"Revoke key {prefix}").click()
    confirm = page.get_by_role("dialog", name="Revoke")
    expect(confirm).to_contain_text(f"Revoke key {prefix}… of {USER[0]}?")
    confirm.get_by_role("button", name="Revoke").click()
    expect(row).to_have_count(0)
    refused = httpx.get(site.url + "/v1/models", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 401

    page.get_by_label("Show revoked keys").check()
    expect(row).to_contain_text("Revoked")
