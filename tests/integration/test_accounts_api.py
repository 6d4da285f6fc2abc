"""The native accounts API: own keys, the admin API and who may use it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from support import Gateway, remember
from test_public_routes import all_routes, concrete

ADMIN_PASSWORD = remember("granite-Falcon-3318")
USER_PASSWORD = remember("meadow-Lantern-5521")


_CLIENTS: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def client(gateway: Gateway, credential: str) -> httpx.Client:
    made = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {credential}"})
    _CLIENTS.append(made)
    return made


@pytest.fixture
def admin(gateway: Gateway) -> httpx.Client:
    gateway.user("root", ADMIN_PASSWORD, admin=True)
    return client(gateway, gateway.login("root", ADMIN_PASSWORD))


def as_user(gateway: Gateway, name: str) -> httpx.Client:
    return client(gateway, gateway.key(name))


def test_a_normal_user_gets_403_on_every_admin_route(gateway: Gateway) -> None:
    user = as_user(gateway, "alice")
    admin_routes = [
        (path, route)
        for path, route in all_routes(list(gateway.app.routes))
        if path.startswith("/api/v1/admin/")
    ]
    assert len(admin_routes) >= 10
    for path, route in admin_routes:
        for method in sorted(set(getattr(route, "methods", ())) - {"HEAD"}):
            response = user.request(method, concrete(path), json={})
            assert response.status_code == 403, (method, path, response.status_code)
            assert response.json()["error"]["type"] == "permission_error"


def test_users_manage_their_own_keys(gateway: Gateway) -> None:
    alice = as_user(gateway, "alice")
    made = alice.post("/api/v1/keys", json={"name": "laptop"})
    assert made.status_code == 201
    key = remember(made.json()["key"])
    assert key.startswith("sk-cg-") and made.json()["prefix"] == key[:12]
    listed = alice.get("/api/v1/keys").json()
    assert [k["name"] for k in listed] == [None, "laptop"]
    assert all("key" not in k for k in listed)
    api = openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)
    assert [m.id for m in api.models.list()] == ["demo"]
    revoked = alice.delete(f"/api/v1/keys/{made.json()['id']}")
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    with pytest.raises(openai.AuthenticationError):
        api.models.list()


def test_user_b_cannot_see_or_revoke_user_a_keys(gateway: Gateway) -> None:
    alice, bob = as_user(gateway, "alice"), as_user(gateway, "bob")
    alice_key = alice.post("/api/v1/keys", json={"name": "mine"}).json()
    remember(alice_key["key"])
    assert all(k["user"] == "bob" for k in bob.get("/api/v1/keys").json())
    attempt = bob.delete(f"/api/v1/keys/{alice_key['id']}")
    assert attempt.status_code == 404
    api = openai.OpenAI(base_url=gateway.base_url, api_key=alice_key["key"], max_retries=0)
    assert api.models.list().data


def test_admin_creates_users_who_can_log_in(gateway: Gateway, admin: httpx.Client) -> None:
    made = admin.post(
        "/api/v1/admin/users", json={"name": "dave", "password": USER_PASSWORD, "role": "user"}
    )
    assert made.status_code == 201 and made.json()["role"] == "user"
    assert admin.post("/api/v1/admin/users", json={"name": "dave"}).status_code == 409
    token = gateway.login("dave", USER_PASSWORD)
    assert token
    names = [u["name"] for u in admin.get("/api/v1/admin/users").json()]
    assert names == ["root", "dave"]


def test_admin_resets_a_password(gateway: Gateway, admin: httpx.Client) -> None:
    gateway.user("dave", USER_PASSWORD)
    old_token = gateway.login("dave", USER_PASSWORD)
    new_password = remember("copper-Willow-7734")
    assert admin.patch("/api/v1/admin/users/dave", json={"password": new_password}).is_success
    assert (
        httpx.get(
            gateway.url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {old_token}"}
        ).status_code
        == 401
    )
    assert gateway.login("dave", new_password)


def test_admin_cannot_lock_themselves_out(admin: httpx.Client) -> None:
    assert admin.patch("/api/v1/admin/users/root", json={"disabled": True}).status_code == 409
    assert admin.patch("/api/v1/admin/users/root", json={"role": "user"}).status_code == 409


def test_admin_sets_quotas_and_manages_anyones_keys(gateway: Gateway, admin: httpx.Client) -> None:
    gateway.user("dave", USER_PASSWORD)
    quota = admin.put("/api/v1/admin/users/dave/quota", json={"daily_requests": 3, "rpm": -1})
    assert quota.status_code == 200
    assert quota.json()["quota"] == {
        "daily_requests": 3,
        "daily_tokens": None,
        "rpm": -1,
        "max_streams": None,
    }
    made = admin.post("/api/v1/admin/users/dave/keys", json={"name": "ci"})
    assert made.status_code == 201
    remember(made.json()["key"])
    key_id = made.json()["id"]
    limited = admin.put(f"/api/v1/admin/keys/{key_id}/quota", json={"daily_requests": 1})
    assert limited.json()["quota"]["daily_requests"] == 1
    assert [k["id"] for k in admin.get("/api/v1/admin/users/dave/keys").json()] == [key_id]
    assert key_id in [k["id"] for k in admin.get("/api/v1/admin/keys").json()]
    assert admin.delete(f"/api/v1/admin/keys/{key_id}").json()["revoked_at"] is not None
    assert admin.get("/api/v1/admin/users/nobody").status_code == 404


def test_admin_api_is_in_the_openapi_document(gateway: Gateway) -> None:
    paths = httpx.get(gateway.url + "/openapi.json").json()["paths"]
    assert {"/api/v1/auth/login", "/api/v1/keys", "/api/v1/usage", "/api/v1/admin/users"} <= set(
        paths
    )


def test_the_user_list_shows_the_limits_that_apply_and_todays_use(
    gateway: Gateway, admin: httpx.Client
) -> None:
    key = gateway.key("bob")
    api = openai.OpenAI(base_url=gateway.base_url, api_key=key)
    api.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
    admin.put("/api/v1/admin/users/carol/quota", json={"daily_requests": 3})  # not a user yet
    gateway.key("carol")
    admin.put("/api/v1/admin/users/carol/quota", json={"daily_requests": 3})
    gateway.flush()
    listed = {u["name"]: u for u in admin.get("/api/v1/admin/users").json()}
    bob, carol, root = listed["bob"], listed["carol"], listed["root"]
    assert bob["quota"]["daily_requests"] is None, "no limit of his own"
    assert bob["limits"]["daily_requests"] == gateway.settings.default_daily_requests
    assert bob["today"]["requests"] == 1 and bob["today"]["tokens"] > 0
    assert carol["limits"]["daily_requests"] == 3 and carol["today"]["requests"] == 0
    assert root["limits"]["daily_requests"] is None, "an administrator has no limit"
    found = admin.get("/api/v1/admin/users", params={"q": "CAR"}).json()
    assert [u["name"] for u in found] == ["carol"]
