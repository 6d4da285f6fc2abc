"""No password, key or login token ever reaches a log line, even at debug level, even when
things go wrong. (The whole test run is checked the same way when it ends: see conftest.)"""

from __future__ import annotations

import logging

import httpx
from support import LOG_LINES, SECRET_PATTERN, Gateway, leaked_secrets, remember

PASSWORD = remember("saffron-Glacier-6610")


def test_no_secret_reaches_the_log(gateway: Gateway) -> None:
    assert logging.getLogger("chatgate").isEnabledFor(logging.DEBUG)
    start = len(LOG_LINES)
    gateway.user("alice", PASSWORD, admin=True)
    key = gateway.key("alice")
    token = gateway.login("alice", PASSWORD)
    url = gateway.url
    with httpx.Client(base_url=url) as http:
        http.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD + "x"})
        http.post("/api/v1/auth/login", json={"username": PASSWORD, "password": PASSWORD})
        chatapi = remember(
            http.post("/token", json={"u": "alice", "p": PASSWORD}).json()["message"]["token"]
        )
        http.get("/api", params={"q": "hello"}, headers={"Authorization": f"Bearer {chatapi}"})
        for credential in (key, token, key[:-2] + "zz", token[:-2] + "zz", "Basic " + PASSWORD):
            http.get("/v1/models", headers={"Authorization": f"Bearer {credential}"})
        made = http.post("/api/v1/keys", json={}, headers={"Authorization": f"Bearer {token}"})
        remember(made.json()["key"])
        http.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]},
        )
        http.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
        http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    gateway.flush()
    lines = LOG_LINES[start:]
    assert lines, "the scenario logged nothing, so the check would prove nothing"
    assert leaked_secrets(lines) == []


def test_the_leak_check_would_catch_a_leak() -> None:
    """The check above is not vacuous: a logged key or JWT is found even if never remembered."""
    start = len(LOG_LINES)
    logging.getLogger("chatgate.test").debug("%s", "sk-cg-" + "A" * 30)
    assert SECRET_PATTERN.findall("\n".join(LOG_LINES[start:]))
    del LOG_LINES[start:]
