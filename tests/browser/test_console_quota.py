"""The admin console's main story: an administrator adds a user and caps them at 3 requests a
day; the user, in another browser, asks 4 questions and is told on the 4th that the day's quota
is used up; the console's usage chart and its table count 3 requests for them, and the audit
log lists the quota change. A normal user who opens the console's addresses is refused."""

from __future__ import annotations

from collections.abc import Callable

from browsing import ADMIN, USER, Site, login
from playwright.sync_api import Locator, Page, expect


def bar(chart: Locator, series: str, day: str) -> Locator:
    """The bar Chartist drew for one series on one day: its group is named for the series
    (``ct:series-name``) and each bar carries its day as meta (``ct:meta``) and its value
    (``ct:value``). XPath, since CSS cannot match these namespaced attributes."""
    return chart.locator(
        f"xpath=.//*[local-name()='g' and @*[name()='ct:series-name']='{series}']"
        f"/*[local-name()='line' and @*[name()='ct:meta']='{day}']"
    )


def send(page: Page, question: str) -> None:
    box = page.locator("#chat-input")
    box.fill(question)
    box.press("Enter")


def open_section(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Console sections").get_by_role("link", name=name).click()


def add_user(page: Page, name: str) -> str:
    """Add a user through the console's form; returns the one-time password it shows."""
    page.get_by_placeholder("User name").fill(name)
    page.get_by_role("button", name="Add", exact=True).click()
    shown = page.locator("[data-new-password]")
    expect(shown).to_be_visible()
    return shown.inner_text().strip()


def test_an_admin_caps_a_new_user_at_three_requests_and_sees_them_counted(
    new_page: Callable[..., Page], site: Site
) -> None:
    admin = new_page()
    login(admin, *ADMIN)
    admin.get_by_role("link", name="Admin").click()
    expect(admin.get_by_role("heading", name="All users")).to_be_visible()

    password = add_user(admin, "bob")
    assert len(password) >= 12
    row = admin.locator(".users-table tr[data-user=bob]")
    expect(row).to_contain_text("Active")

    row.get_by_role("button", name="Manage bob").click()
    dialog = admin.get_by_role("dialog", name="Manage bob")
    dialog.get_by_role("tab", name="Limits").click()
    dialog.get_by_label("Requests per day").fill("3")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(row.locator("[data-limit='3']")).to_have_text("0 / 3")

    # The user, in a browser of their own, asks four questions; the fourth is refused.
    user = new_page()
    user.goto("/login")
    user.locator("#login-username").fill("bob")
    user.locator("#login-password").fill(password)
    user.locator("#login-password").press("Enter")
    # The password was one-time: the first login chooses the user's own.
    user.get_by_label("New password", exact=True).fill("bob-own-password-1")
    user.get_by_label("New password again").fill("bob-own-password-1")
    user.get_by_role("button", name="Save and continue").click()
    user.wait_for_url(lambda url: not url.rstrip("/").endswith("/login"))
    counted = user.locator(".meter .meter-num").first
    for n in (1, 2, 3):
        send(user, f"Question number {n}?")
        expect(counted).to_have_text(f"{n} / 3")
    send(user, "Question number 4?")
    notice = user.locator(".quota-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Today\u2019s quota is used up")
    expect(notice).to_contain_text("You have used all 3 requests allowed today.")
    # The fourth question was refused, not counted, and comes back to be sent another day.
    expect(user.locator("#chat-input")).to_have_value("Question number 4?")
    expect(counted).to_have_text("3 / 3")

    # The users list shows what they used against the cap.
    admin.reload()
    expect(admin.locator(".users-table tr[data-user=bob] [data-limit='3']")).to_have_text("3 / 3")

    # The usage chart, stacked by user, has a bar of 3 for bob today, and its table says so.
    open_section(admin, "Usage")
    chart = admin.locator("[data-chart=requests]")
    expect(admin.locator("#usage-end")).not_to_have_value("")
    today_day = admin.locator("#usage-end").input_value()
    expect(bar(chart, "bob", today_day)).to_have_attribute("ct:value", "3")
    # The axis counts requests in whole numbers.
    ticks = chart.locator(".ct-label.ct-vertical").all_inner_texts()
    assert ticks and all(tick.isdigit() for tick in ticks), ticks
    card = admin.locator(".chart-card").filter(has=chart)
    card.locator("summary").click()
    today = card.locator("tbody tr").last
    expect(today.locator("td[data-key=bob]")).to_have_text("3")
    expect(admin.locator("[data-total=requests]")).to_have_text("3")
    csv = card.get_by_role("link", name="Download the rows of")
    assert "chart=requests" in (csv.get_attribute("href") or "")

    # The audit log lists the quota change, by whom and on whom.
    open_section(admin, "Audit log")
    admin.get_by_label("Action").select_option(label="Quotas")
    admin.get_by_role("button", name="Filter").click()
    entry = admin.locator(".audit-table tr[data-action='user.quota'][data-target=bob]")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text(ADMIN[0])
    expect(entry).to_contain_text("daily_requests: 3")


def test_a_normal_user_opening_the_console_is_refused(page: Page, site: Site) -> None:
    login(page, *USER)
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    for path in ("/admin", "/admin/users", "/admin/usage", "/admin/audit"):
        page.goto(path)
        refusal = page.locator(".console-refused")
        expect(refusal).to_contain_text("Only administrators may open the console.")
        expect(page.locator(".users-table")).to_have_count(0)
    # The API refuses them as well: the page hides nothing the server would give.
    answer = page.request.get("/api/v1/admin/users")
    assert answer.status == 403
    answer = page.request.get("/api/v1/admin/audit")
    assert answer.status == 403
