"""The audit log in the console, a page at a time: 55 quota changes fill a page of 50 and a
second of the 5 oldest and what came before them; filtering by who made a change keeps only
theirs."""

from __future__ import annotations

from browsing import ADMIN, USER, Site, login
from playwright.sync_api import Page, expect


def test_the_audit_log_pages_back_and_forth_and_filters_by_actor(page: Page, site: Site) -> None:
    admin = site.api(ADMIN[0])
    for n in range(55):
        admin.put(
            f"/api/v1/admin/users/{USER[0]}/quota", json={"daily_requests": 100 + n}
        ).raise_for_status()

    login(page, *ADMIN)
    page.goto("/admin/audit")
    rows = page.locator(".audit-table tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text("daily_requests: 154")
    newer = page.get_by_role("button", name="Newer")
    older = page.get_by_role("button", name="Older")
    expect(newer).to_be_disabled()

    older.click()
    # The 5 oldest quota changes, then the users the server was started with.
    expect(rows.first).to_contain_text("daily_requests: 104")
    expect(page.locator(".audit-table tr[data-action='user.quota']")).to_have_count(5)
    expect(older).to_be_disabled()
    newer.click()
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text("daily_requests: 154")

    # Only the administrator's changes: the users made at start (by the command line) go.
    page.get_by_label("Who").fill(ADMIN[0])
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(".audit-table tr[data-action='user.create']")).to_have_count(0)
    older.click()
    expect(rows).to_have_count(5)
    expect(page.locator(".audit-table tr[data-action='user.quota']")).to_have_count(5)
