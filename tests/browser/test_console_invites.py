"""Sign-up by invite, from the console to the login page: the administrator turns sign-up to
"by invite" and makes a single-use invite; two browsers redeem its link at the same moment, and
exactly one account is made. With sign-up off, the login page shows no sign-up form at all."""

from __future__ import annotations

from collections.abc import Callable

from browsing import ADMIN, Site, login
from playwright.sync_api import Page, expect

SUBMIT_NOW = "document.querySelector('.signup form').requestSubmit()"


def make_invite(page: Page) -> str:
    """Sign-up by invite, and a single-use invite made in the console; returns its link."""
    login(page, *ADMIN)
    page.goto("/admin/signup")
    page.get_by_label("By invite").check()
    expect(page.get_by_role("status").filter(has_text="Sign-up setting saved")).to_be_visible()
    page.get_by_label("Accounts it makes").fill("1")
    page.get_by_label("Note").fill("for the new team")
    page.get_by_role("button", name="Make an invite").click()
    link = page.locator("[data-invite-link]")
    expect(link).to_be_visible()
    return link.inner_text().strip()


def fill_signup(page: Page, name: str) -> None:
    page.get_by_label("User name", exact=True).nth(1).fill(name)
    page.get_by_label("Password (8 characters or more)").fill(f"{name}-password-1")
    page.get_by_label("Password again").fill(f"{name}-password-1")


def test_an_invite_redeemed_by_two_browsers_at_once_makes_exactly_one_account(
    new_page: Callable[..., Page], site: Site
) -> None:
    admin = new_page()
    link = make_invite(admin)
    assert "/login?invite=" in link
    expect(admin.locator(".invites-table tbody tr")).to_have_count(1)
    expect(admin.locator(".invites-table tbody tr")).to_contain_text("0 / 1")

    first, second = new_page(), new_page()
    for page, name in ((first, "carol"), (second, "dave")):
        page.goto(link)
        expect(page.get_by_label("Invite code")).to_have_value(link.split("invite=")[1])
        fill_signup(page, name)
    # Both forms go at once: neither waits for the other's answer.
    first.evaluate(SUBMIT_NOW)
    second.evaluate(SUBMIT_NOW)

    outcomes = {}
    for page, name in ((first, "carol"), (second, "dave")):
        done = page.locator("#chat-input").or_(page.locator(".signup-error"))
        expect(done).to_be_visible()
        outcomes[name] = page.locator("#chat-input").count() == 1
    assert sorted(outcomes.values()) == [False, True], outcomes
    winner = next(name for name, won in outcomes.items() if won)
    loser = next(name for name, won in outcomes.items() if not won)
    refused = (first if loser == "carol" else second).locator(".signup-error")
    expect(refused).to_contain_text("Could not sign up")

    names = {u["name"] for u in site.api(ADMIN[0]).get("/api/v1/admin/users").json()}
    assert winner in names
    assert loser not in names
    admin.reload()
    expect(admin.locator(".invites-table tbody tr")).to_contain_text("1 / 1")


def test_the_login_page_shows_no_sign_up_form_while_sign_up_is_off(page: Page, site: Site) -> None:
    page.goto("/login")
    expect(page.locator("#login-username")).to_be_visible()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.locator(".signup, .signup-open")).to_have_count(0)


def test_an_open_sign_up_waits_for_approval_until_an_admin_approves_it(
    new_page: Callable[..., Page], site: Site
) -> None:
    site.api(ADMIN[0]).put("/api/v1/admin/signup", json={"mode": "approval"}).raise_for_status()
    visitor = new_page()
    visitor.goto("/login")
    visitor.get_by_role("button", name="No account yet? Sign up").click()
    fill_signup(visitor, "erin")
    visitor.get_by_role("button", name="Sign up", exact=True).click()
    expect(visitor.locator(".signup-pending")).to_contain_text("waiting for approval")

    admin = new_page()
    login(admin, *ADMIN)
    admin.goto("/admin/users")
    row = admin.locator(".users-table tr[data-user=erin]")
    expect(row).to_contain_text("Waiting for approval")
    row.get_by_role("button", name="Approve erin").click()
    expect(row).to_contain_text("Active")

    login(visitor, "erin", "erin-password-1")
    expect(visitor.locator("#chat-input")).to_be_visible()
