"""What browser tests share besides fixtures: the browser's flags, the users a site has, the
``Site`` itself and ``login``. Tests import it as ``from browsing import USER, Site, login``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from playwright.sync_api import Page
from support import Gateway

ROOT = Path(__file__).parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# Flags for a closed network: Chromium's own background calls would only be refused.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Read when the module loads: the tests' own fixture clears every CHATGATE_* variable.
SCREENSHOTS = os.environ.get("CHATGATE_SCREENSHOTS") == "1"
SCREENSHOT_DIR = ROOT / "docs" / "screenshots"

ADMIN = ("root", "root-password-1")
USER = ("alice", "alice-password-1")


@dataclass
class Site:
    """A live chatgate for the browser, and the users it was given."""

    gateway: Gateway
    admin: tuple[str, str] = ADMIN
    user: tuple[str, str] = USER
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.gateway.url

    def api(self, name: str | None = None) -> httpx.Client:
        """An httpx client on the server, logged in as ``name`` (the normal user by default)
        with a bearer token."""
        name = name or self.user[0]
        password = dict((self.admin, self.user))[name]
        token = self.gateway.login(name, password)
        client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()


def login(page: Page, user: str, password: str) -> None:
    """Log in through the login page, and wait for the page to leave it."""
    page.goto("/login")
    page.locator("#login-username").fill(user)
    page.locator("#login-password").fill(password)
    page.locator("#login-password").press("Enter")
    page.wait_for_url(lambda url: not url.rstrip("/").endswith("/login"))
    page.locator("#login-username").wait_for(state="detached")
