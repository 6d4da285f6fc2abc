"""Importing users from a CSV through the console: good rows make accounts whose passwords
work, a name that exists already is skipped, and malformed rows are refused, each with its line
and reason in the report."""

from __future__ import annotations

import httpx
from browsing import ADMIN, USER, Site, login
from playwright.sync_api import Page, expect

CSV = "\n".join(
    [
        "frank,frank-password-1",
        f"{USER[0]},another-password-1",
        "grace",
        "hank,short",
        "frank,frank-password-2",
        "ivy,ivy-password-1",
    ]
)


def test_a_csv_import_reports_each_row_and_the_new_passwords_work(page: Page, site: Site) -> None:
    login(page, *ADMIN)
    page.goto("/admin/users")
    page.get_by_label("Or paste the lines").fill(CSV)
    page.get_by_role("button", name="Import").click()
    report = page.locator(".import-report")
    expect(report).to_contain_text("2 created", timeout=30_000)

    def result(line: int) -> str:
        return report.locator(f"tr[data-line='{line}']").get_attribute("data-result") or ""

    assert result(1) == "created"
    assert result(2) == "skipped"
    assert result(3) == "refused"
    assert result(4) == "refused"
    assert result(5) in ("skipped", "refused")
    assert result(6) == "created"
    expect(report.locator("tr[data-line='4']")).to_contain_text("Refused")

    # The list shows the new users, and their passwords (hashed on import) log them in.
    expect(page.locator(".users-table tr[data-user=frank]")).to_be_visible()
    expect(page.locator(".users-table tr[data-user=ivy]")).to_be_visible()
    expect(page.locator(".users-table tr[data-user=grace]")).to_have_count(0)
    for name, password in (("frank", "frank-password-1"), ("ivy", "ivy-password-1")):
        answer = httpx.post(
            site.url + "/api/v1/auth/login", json={"username": name, "password": password}
        )
        assert answer.status_code == 200, answer.text
    wrong = httpx.post(
        site.url + "/api/v1/auth/login",
        json={"username": "frank", "password": "frank-password-2"},
    )
    assert wrong.status_code == 401
