"""The audit log: who changed users, quotas, keys, providers and models, and when."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support import Gateway, remember

ADMIN_PASSWORD = remember("quarry-Heron-7741")
NEW_PASSWORD = remember("willow-Copper-2290")


@pytest.fixture
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    gateway.user("root", ADMIN_PASSWORD, admin=True)
    token = gateway.login("root", ADMIN_PASSWORD)
    with httpx.Client(
        base_url=gateway.url + "/api/v1/admin", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client


def entries(admin: httpx.Client, **filters: Any) -> list[dict[str, Any]]:
    response = admin.get("/audit", params=filters)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_a_quota_change_is_in_the_audit_log_with_who_made_it(
    gateway: Gateway, admin: httpx.Client
) -> None:
    assert admin.post("/users", json={"name": "bob"}).status_code == 201
    assert admin.put("/users/bob/quota", json={"daily_requests": 3}).status_code == 200
    [change] = entries(admin, action="user.quota")
    assert change["actor"] == "root" and change["target"] == "bob"
    assert change["details"] == {"daily_requests": 3}
    # The family filter finds the creation too, newest first.
    about_bob = entries(admin, action="user", target="bob")
    assert [e["action"] for e in about_bob] == ["user.quota", "user.create"]
    assert about_bob[1]["actor"] == "root" and about_bob[1]["details"]["role"] == "user"


def test_passwords_and_keys_never_reach_the_audit_log(
    gateway: Gateway, admin: httpx.Client
) -> None:
    admin.post("/users", json={"name": "carol", "password": ADMIN_PASSWORD[::-1]})
    admin.patch("/users/carol", json={"password": NEW_PASSWORD})
    made = admin.post("/users/carol/keys", json={"name": "laptop"}).json()
    revoked = admin.delete(f"/keys/{made['id']}")
    assert revoked.status_code == 200
    log = admin.get("/audit").text
    assert NEW_PASSWORD not in log and made["key"] not in log
    assert ADMIN_PASSWORD[::-1] not in log
    [reset] = entries(admin, action="user.update")
    assert reset["details"] == {"password": "changed"}
    [created] = entries(admin, action="key.create")
    assert created["details"]["prefix"] == made["prefix"]
    assert [e["action"] for e in entries(admin, target=f"key {made['id']}")] == [
        "key.revoke",
        "key.create",
    ]


def test_users_own_changes_and_the_command_line_are_logged_too(
    gateway: Gateway, admin: httpx.Client
) -> None:
    key = gateway.key("dave")  # made in process, as `chatgate keys create` does
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}) as dave:
        own = dave.post("/api/v1/keys", json={"name": "ci"})
        assert own.status_code == 201
    by_dave = entries(admin, actor="dave")
    assert [e["action"] for e in by_dave] == ["key.create"]
    operator = [e for e in entries(admin, action="key.create") if e["actor"] != "dave"]
    assert operator and operator[-1]["actor"].startswith("command line")


def test_provider_changes_are_logged_without_their_keys(
    gateway: Gateway, admin: httpx.Client
) -> None:
    secret = remember("sk-upstream-audit-secret")
    body = {"base_url": "http://127.0.0.1:9/v1", "api_keys": [secret], "discover_models": False}
    assert admin.put("/providers/spare", json=body).status_code == 200
    assert admin.delete("/providers/spare").status_code == 204
    log = entries(admin, action="provider")
    assert [e["action"] for e in log] == ["provider.delete", "provider.put"]
    assert secret not in admin.get("/audit").text


def test_the_audit_log_pages_and_is_refused_to_normal_users(
    gateway: Gateway, admin: httpx.Client
) -> None:
    for n in range(5):
        admin.post("/users", json={"name": f"user{n}"})
    first = admin.get("/audit", params={"limit": 2}).json()
    assert len(first["data"]) == 2 and first["next_before"] is not None
    rest = admin.get("/audit", params={"limit": 10, "before": first["next_before"]}).json()
    targets = [e["target"] for e in first["data"] + rest["data"]]
    assert targets == ["user4", "user3", "user2", "user1", "user0", "root"]
    for beyond in ({"before": 2**64}, {"since": 1e300}, {"until": "nan"}):
        assert admin.get("/audit", params=beyond).status_code == 422, beyond
    user = httpx.get(
        gateway.url + "/api/v1/admin/audit",
        headers={"Authorization": f"Bearer {gateway.key('eve')}"},
    )
    assert user.status_code == 403
