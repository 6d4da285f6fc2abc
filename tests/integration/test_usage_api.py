"""Usage per user, key, model and day, for oneself and for the admin."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from support import Gateway, free_port, remember

PASSWORD = remember("amber-Tundra-4450")
CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def busy(make_gateway: Callable[..., Gateway]) -> Iterator[tuple[Gateway, dict[str, str]]]:
    """alice: two demo requests by key, one by login, one failing upstream; bob: one."""
    gateway = make_gateway(
        demo_model=True,
        openai_base_url=f"http://127.0.0.1:{free_port()}/v1",
        openai_api_key="k",
        models=[{"name": "gpt-x", "deployments": ["openai"]}],
    )
    gateway.user("alice", PASSWORD)
    gateway.user("root", PASSWORD, admin=True)
    creds = {
        "alice-key": gateway.key("alice"),
        "alice-login": gateway.login("alice", PASSWORD),
        "bob": gateway.key("bob"),
        "root": gateway.login("root", PASSWORD),
    }
    url = gateway.base_url + "/chat/completions"
    for who, body in [
        ("alice-key", CHAT),
        ("alice-key", CHAT),
        ("alice-login", CHAT),
        ("alice-key", {**CHAT, "model": "gpt-x"}),
        ("bob", CHAT),
    ]:
        httpx.post(url, json=body, headers={"Authorization": f"Bearer {creds[who]}"})
    yield gateway, creds


def get(gateway: Gateway, credential: str, path: str, **params: str) -> httpx.Response:
    return httpx.get(
        gateway.url + path, params=params, headers={"Authorization": f"Bearer {credential}"}
    )


def test_a_user_sees_their_own_usage_per_day_model_and_key(
    busy: tuple[Gateway, dict[str, str]],
) -> None:
    gateway, creds = busy
    response = get(gateway, creds["alice-login"], "/api/v1/usage")
    assert response.status_code == 200
    body = response.json()
    assert body["group_by"] == ["day", "model", "key"] and body["from"] <= body["to"]
    rows = {(r["model"], r["key_id"]): r for r in body["rows"]}
    assert set(rows) == {("demo", 1), ("demo", None), ("gpt-x", 1)}
    by_key = rows[("demo", 1)]
    assert by_key["requests"] == 2 and by_key["key_prefix"] == creds["alice-key"][:12]
    assert by_key["completion_tokens"] > 0
    assert by_key["total_tokens"] == by_key["prompt_tokens"] + by_key["completion_tokens"]
    assert rows[("demo", None)]["requests"] == 1
    failed = rows[("gpt-x", 1)]
    assert (failed["requests"], failed["errors"]) == (0, 1)
    assert all(r["user"] is None for r in body["rows"])  # not grouped by user: only hers


def test_the_admin_sees_everyone_grouped(busy: tuple[Gateway, dict[str, str]]) -> None:
    gateway, creds = busy
    rows = get(gateway, creds["root"], "/api/v1/admin/usage").json()["rows"]
    demo = {r["user"]: r["requests"] for r in rows if r["model"] == "demo"}
    assert demo == {"alice": 3, "bob": 1}
    per_user = get(gateway, creds["root"], "/api/v1/admin/usage", group_by="user").json()
    assert [(r["user"], r["requests"], r["errors"]) for r in per_user["rows"]] == [
        ("alice", 3, 1),
        ("bob", 1, 0),
    ]
    bob = get(gateway, creds["root"], "/api/v1/admin/usage", user="bob").json()["rows"]
    assert [r["user"] for r in bob] == ["bob"]
    assert get(gateway, creds["bob"], "/api/v1/admin/usage").status_code == 403


def test_usage_ranges_and_groups_are_checked(busy: tuple[Gateway, dict[str, str]]) -> None:
    gateway, creds = busy
    alice = creds["alice-key"]
    empty = get(gateway, alice, "/api/v1/usage", **{"from": "2001-01-01", "to": "2001-01-31"})
    assert empty.status_code == 200 and empty.json()["rows"] == []
    backwards = get(gateway, alice, "/api/v1/usage", **{"from": "2030-01-02", "to": "2030-01-01"})
    assert backwards.status_code == 400
    assert get(gateway, alice, "/api/v1/usage", group_by="user; drop").status_code == 400
    assert get(gateway, alice, "/api/v1/usage", **{"from": "yesterday"}).status_code == 422
