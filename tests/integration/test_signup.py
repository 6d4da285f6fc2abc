"""Sign-up: off by default, open with an administrator's approval, or by invite; the mode is
changed at run time by an administrator and audited."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from support import Gateway, remember

ADMIN_PASSWORD = remember("lantern-Basil-5183")
PASSWORD = remember("meadow-Tinker-4407")


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    return make_gateway(login_max_failures=3)


@pytest.fixture
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    gateway.user("root", ADMIN_PASSWORD, admin=True)
    token = gateway.login("root", ADMIN_PASSWORD)
    with httpx.Client(
        base_url=gateway.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client


@pytest.fixture
def anyone(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url + "/api/v1") as client:
        yield client


def test_sign_up_is_off_until_an_administrator_opens_it(
    anyone: httpx.Client, admin: httpx.Client
) -> None:
    assert anyone.get("/auth/signup").json() == {"mode": "off"}
    refused = anyone.post("/auth/signup", json={"username": "eve", "password": PASSWORD})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "signup_closed"
    assert admin.get("/admin/users/eve").status_code == 404


def test_the_start_value_comes_from_the_settings(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(signup="approval")
    assert httpx.get(gateway.url + "/api/v1/auth/signup").json() == {"mode": "approval"}


def test_an_account_made_under_approval_waits_until_an_administrator_approves_it(
    gateway: Gateway, anyone: httpx.Client, admin: httpx.Client
) -> None:
    assert admin.put("/admin/signup", json={"mode": "approval"}).json() == {"mode": "approval"}
    assert anyone.get("/auth/signup").json() == {"mode": "approval"}
    made = anyone.post("/auth/signup", json={"username": "frank", "password": PASSWORD})
    assert made.status_code == 201, made.text
    assert made.json() == {"username": "frank", "status": "pending"}

    login = anyone.post("/auth/login", json={"username": "frank", "password": PASSWORD})
    assert login.status_code == 403
    assert login.json()["error"]["code"] == "account_pending"
    # A wrong password is not told the account waits.
    wrong = anyone.post("/auth/login", json={"username": "frank", "password": PASSWORD[::-1]})
    assert wrong.status_code == 401

    listed = {u["name"]: u for u in admin.get("/admin/users").json()}
    assert listed["frank"]["status"] == "pending"
    approved = admin.patch("/admin/users/frank", json={"status": "active"})
    assert approved.status_code == 200 and approved.json()["status"] == "active"
    token = gateway.login("frank", PASSWORD)
    me = httpx.get(gateway.url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["username"] == "frank"


def test_a_pending_account_cannot_use_a_key(gateway: Gateway, admin: httpx.Client) -> None:
    admin.put("/admin/signup", json={"mode": "approval"})
    httpx.post(gateway.url + "/api/v1/auth/signup", json={"username": "gina", "password": PASSWORD})
    key = admin.post("/admin/users/gina/keys", json={"name": "made early"}).json()["key"]
    remember(key)
    asked = httpx.get(gateway.url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"})
    assert asked.status_code == 401
    admin.patch("/admin/users/gina", json={"status": "active"})
    asked = httpx.get(gateway.url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"})
    assert asked.status_code == 200


def test_sign_up_keeps_the_password_rules_and_names_taken(
    anyone: httpx.Client, admin: httpx.Client
) -> None:
    admin.put("/admin/signup", json={"mode": "approval"})
    short = anyone.post("/auth/signup", json={"username": "hal", "password": "short"})
    assert short.status_code == 422
    bad_name = anyone.post("/auth/signup", json={"username": "a b", "password": PASSWORD})
    assert bad_name.status_code == 400
    taken = anyone.post("/auth/signup", json={"username": "root", "password": PASSWORD})
    assert taken.status_code == 409


def test_the_mode_change_is_audited_and_refused_to_normal_users(
    gateway: Gateway, admin: httpx.Client
) -> None:
    admin.put("/admin/signup", json={"mode": "invite"})
    admin.put("/admin/signup", json={"mode": "off"})
    changes = admin.get("/admin/audit", params={"action": "signup"}).json()["data"]
    assert [(c["actor"], c["details"]) for c in changes] == [
        ("root", {"mode": "off", "was": "invite"}),
        ("root", {"mode": "invite", "was": "off"}),
    ]
    gateway.user("ivan", PASSWORD)
    token = gateway.login("ivan", PASSWORD)
    with httpx.Client(
        base_url=gateway.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}
    ) as ivan:
        assert ivan.get("/admin/signup").status_code == 403
        assert ivan.put("/admin/signup", json={"mode": "approval"}).status_code == 403
        assert ivan.get("/admin/invites").status_code == 403
        assert ivan.post("/admin/invites", json={}).status_code == 403
    unknown = admin.put("/admin/signup", json={"mode": "open"})
    assert unknown.status_code == 422


def test_another_server_on_the_same_database_sees_the_new_mode(
    make_gateway: Callable[..., Gateway], gateway: Gateway, admin: httpx.Client
) -> None:
    other = make_gateway()
    admin.put("/admin/signup", json={"mode": "approval"})
    assert httpx.get(other.url + "/api/v1/auth/signup").json() == {"mode": "approval"}


def test_an_administrator_gets_a_generated_password_once(
    gateway: Gateway, admin: httpx.Client
) -> None:
    made = admin.post("/admin/users", json={"name": "judy"})
    assert made.status_code == 201
    password = remember(made.json()["password"])
    assert len(password) >= 16
    assert gateway.login("judy", password)
    assert "password" not in admin.get("/admin/users/judy").json()
    assert password not in admin.get("/admin/audit").text
    given = admin.post("/admin/users", json={"name": "kate", "password": PASSWORD})
    assert given.json()["password"] is None


def test_failed_sign_ups_from_one_address_are_slowed_like_failed_logins(
    anyone: httpx.Client, admin: httpx.Client
) -> None:
    admin.put("/admin/signup", json={"mode": "invite"})
    codes = []
    for n in range(4):
        body = {"username": f"guess{n}", "password": PASSWORD, "invite": f"inv-guess{n}"}
        codes.append(anyone.post("/auth/signup", json=body).status_code)
    assert codes == [403, 403, 403, 429]


def test_enabling_a_pending_account_approves_it(gateway: Gateway, admin: httpx.Client) -> None:
    admin.put("/admin/signup", json={"mode": "approval"})
    httpx.post(gateway.url + "/api/v1/auth/signup", json={"username": "lou", "password": PASSWORD})
    enabled = admin.patch("/admin/users/lou", json={"disabled": False})
    assert enabled.json()["status"] == "active"
    assert gateway.login("lou", PASSWORD)
