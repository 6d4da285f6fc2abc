"""Upstreams in the console: a provider added through its form is listed with its health, a
model mapped to it with an alias shows in the model list, and both changes are in the audit
log; the provider's key is never shown again."""

from __future__ import annotations

from browsing import ADMIN, Site, login
from playwright.sync_api import Page, expect


def test_an_admin_adds_a_provider_and_a_model_with_an_alias(page: Page, site: Site) -> None:
    login(page, *ADMIN)
    page.goto("/admin/upstreams")
    page.get_by_role("button", name="Add provider").click()
    form = page.get_by_role("dialog", name="Add provider")
    form.get_by_label("Name").fill("local")
    form.get_by_label("Base URL").fill("http://127.0.0.1:9/v1")
    form.get_by_label("API keys (one a line)").fill("sk-local-secret-1")
    form.get_by_label("Find its models by asking it").uncheck()
    form.get_by_role("button", name="Save").click()
    expect(form).to_be_hidden()

    card = page.locator(".provider-card[data-provider=local]")
    expect(card).to_contain_text("http://127.0.0.1:9/v1")
    expect(card).to_contain_text("No deployment is resting")
    expect(page.locator("body")).not_to_contain_text("sk-local-secret-1")

    page.get_by_role("button", name="Add model").click()
    dialog = page.get_by_role("dialog", name="Add model")
    dialog.get_by_label("Model", exact=True).fill("team-chat")
    dialog.get_by_label("Aliases").fill("tc, team")
    dialog.get_by_label("Deployments").fill("local")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    row = page.locator(".models-table tr[data-model=team-chat]")
    expect(row).to_contain_text("tc, team")
    expect(row).to_contain_text("local")
    expect(card).to_contain_text("team-chat")

    page.goto("/admin/audit")
    expect(
        page.locator(".audit-table tr[data-action='provider.put'][data-target=local]")
    ).to_be_visible()
    expect(
        page.locator(".audit-table tr[data-action='model.put'][data-target=team-chat]")
    ).to_be_visible()
