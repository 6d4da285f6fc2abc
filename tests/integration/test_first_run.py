"""The first run: a one-time link in the server's log creates the first administrator."""

from __future__ import annotations

import re
import threading
from typing import Any

import httpx
from support import LOG_LINES, Gateway, remember

PASSWORD = remember("harbor-Maple-4410")
LINK = re.compile(r"http://[^/\s]+/setup\?token=([\w-]+)")


def setup_token(since: int) -> str:
    lines = [line for line in LOG_LINES[since:] if "no administrator yet" in line]
    assert len(lines) == 1, "one line, with the link"
    found = LINK.search(lines[0])
    assert found, lines[0]
    return found.group(1)


def create_admin(gateway: Gateway, token: str, name: str = "root") -> httpx.Response:
    body: dict[str, Any] = {"token": token, "username": name, "password": PASSWORD}
    return httpx.post(gateway.url + "/api/v1/setup", json=body, timeout=60)


def test_the_setup_link_creates_the_first_admin_once(make_gateway: Any) -> None:
    before = len(LOG_LINES)
    gateway: Gateway = make_gateway()
    token = setup_token(before)  # logged by design: it works once, and only now
    assert httpx.get(gateway.url + "/api/v1/setup").json() == {"needed": True}
    wrong = create_admin(gateway, token[::-1])
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "permission_denied"

    made = create_admin(gateway, token)
    assert made.status_code == 201, made.text
    assert made.json()["user"]["role"] == "admin"
    me = httpx.get(
        gateway.url + "/api/v1/auth/me",
        headers={"Authorization": f"Bearer {made.json()['token']}"},
    )
    assert me.json()["username"] == "root"

    again = create_admin(gateway, token, "mallory")
    assert again.status_code == 409
    assert httpx.get(gateway.url + "/api/v1/setup").json() == {"needed": False}
    users = gateway.run(gateway.services.accounts.list_users())
    assert [u.name for u in users] == ["root"]


def test_two_setups_at_once_make_exactly_one_admin(make_gateway: Any) -> None:
    before = len(LOG_LINES)
    gateway: Gateway = make_gateway()
    token = setup_token(before)  # logged by design: it works once, and only now
    results: list[int] = []

    def attempt(name: str) -> None:
        results.append(create_admin(gateway, token, name).status_code)

    threads = [threading.Thread(target=attempt, args=(f"admin{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201] + [409] * 5
    admins = gateway.run(gateway.services.accounts.list_users())
    assert [u.role for u in admins].count("admin") == 1


def test_no_link_is_logged_when_an_admin_exists(make_gateway: Any) -> None:
    first: Gateway = make_gateway()
    first.user("root", PASSWORD, admin=True)
    before = len(LOG_LINES)
    again: Gateway = make_gateway()  # the same data directory, so the same database
    assert not [line for line in LOG_LINES[before:] if "no administrator yet" in line]
    refused = create_admin(again, "anything")
    assert refused.status_code == 409
