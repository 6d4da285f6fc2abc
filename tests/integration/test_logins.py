"""Logging in with a password, login JWTs and the cookie, against a live chatgate."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt
import openai
import pytest
from support import Gateway, remember

from chatgate.core.clock import FixedClock

PASSWORD = remember("tulip-Orbit-4471")
OTHER_PASSWORD = remember("walnut-Harbor-9902")


def me(gateway: Gateway, token: str) -> httpx.Response:
    return httpx.get(gateway.url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})


def login(gateway: Gateway, name: str, password: str, **extra: object) -> httpx.Response:
    return httpx.post(
        gateway.url + "/api/v1/auth/login",
        json={"username": name, "password": password, **extra},
    )


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_login_gives_a_jwt_that_works_like_a_key(gateway: Gateway) -> None:
    gateway.user("alice", PASSWORD)
    response = login(gateway, "alice", PASSWORD)
    assert response.status_code == 200
    body = response.json()
    token = remember(body["token"])
    assert body["token_type"] == "bearer" and body["user"]["name"] == "alice"
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert {"sub", "iat", "exp", "jti"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 30 * 86400
    assert me(gateway, token).json()["via"] == "login"
    api = openai.OpenAI(base_url=gateway.base_url, api_key=token, max_retries=0)
    reply = api.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content


def without_request_id(body: Any) -> Any:
    """An answer as it may be compared with another: each has its own request id."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return {**body, "error": {k: v for k, v in body["error"].items() if k != "request_id"}}
    return body


def test_unknown_user_and_wrong_password_get_the_same_answer(gateway: Gateway) -> None:
    gateway.user("alice", PASSWORD)
    wrong = login(gateway, "alice", OTHER_PASSWORD)
    unknown = login(gateway, "nobody", OTHER_PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert without_request_id(wrong.json()) == without_request_id(unknown.json())
    assert wrong.json()["error"]["code"] == "invalid_credentials"


def test_a_user_without_a_password_cannot_log_in(gateway: Gateway) -> None:
    gateway.key("bob")  # created for keys only
    assert login(gateway, "bob", "").status_code == 401


def test_jwt_with_alg_none_is_refused(gateway: Gateway) -> None:
    gateway.user("alice", PASSWORD)
    token = gateway.login("alice", PASSWORD)
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + "."
    assert me(gateway, forged).status_code == 401
    forged_with_sig = forged + token.rsplit(".", 1)[1]
    assert me(gateway, forged_with_sig).status_code == 401


def test_jwt_with_a_wrong_signature_is_refused(gateway: Gateway) -> None:
    gateway.user("alice", PASSWORD)
    token = gateway.login("alice", PASSWORD)
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["sub"] = "1"
    forged = jwt.encode(claims, "x" * 32, algorithm="HS256")
    assert me(gateway, forged).status_code == 401
    head, _payload, sig = token.split(".")
    tampered = ".".join([head, _b64({**claims, "ver": 0, "role": "admin"}), sig])
    assert me(gateway, tampered).status_code == 401


def test_expired_jwt_is_refused(make_gateway) -> None:  # type: ignore[no-untyped-def]
    clock = FixedClock(time.time())
    gateway = make_gateway(clock=clock, jwt_lifetime_days=1)
    gateway.user("alice", PASSWORD)
    token = gateway.login("alice", PASSWORD)
    assert me(gateway, token).status_code == 200
    clock.advance(86400 + 1)
    response = me(gateway, token)
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_disabling_a_user_ends_their_logins_and_keys_at_once(gateway: Gateway) -> None:
    gateway.user("alice", PASSWORD)
    token = gateway.login("alice", PASSWORD)
    key = gateway.key("alice")
    assert me(gateway, token).status_code == 200 and me(gateway, key).status_code == 200
    gateway.run(gateway.services.accounts.update_user("alice", disabled=True))
    assert me(gateway, token).status_code == 401
    assert me(gateway, key).status_code == 401
    assert login(gateway, "alice", PASSWORD).status_code == 403


def test_logout_ends_only_that_login(gateway: Gateway) -> None:
    gateway.user("alice", PASSWORD)
    first, second = gateway.login("alice", PASSWORD), gateway.login("alice", PASSWORD)
    response = httpx.post(
        gateway.url + "/api/v1/auth/logout", headers={"Authorization": f"Bearer {first}"}
    )
    assert response.status_code == 204
    assert me(gateway, first).status_code == 401
    assert me(gateway, second).status_code == 200


def test_logout_everywhere_ends_every_login_but_not_keys(gateway: Gateway) -> None:
    gateway.user("alice", PASSWORD)
    tokens = [gateway.login("alice", PASSWORD) for _ in range(3)]
    key = gateway.key("alice")
    response = httpx.post(
        gateway.url + "/api/v1/auth/logout",
        json={"everywhere": True},
        headers={"Authorization": f"Bearer {tokens[0]}"},
    )
    assert response.status_code == 204
    assert [me(gateway, t).status_code for t in tokens] == [401, 401, 401]
    assert me(gateway, key).status_code == 200
    assert me(gateway, gateway.login("alice", PASSWORD)).status_code == 200


def test_password_change_ends_old_logins_and_gives_a_new_one(gateway: Gateway) -> None:
    gateway.user("alice", PASSWORD)
    old = gateway.login("alice", PASSWORD)
    response = httpx.post(
        gateway.url + "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": OTHER_PASSWORD},
        headers={"Authorization": f"Bearer {old}"},
    )
    assert response.status_code == 200
    new = remember(response.json()["token"])
    assert me(gateway, old).status_code == 401
    assert me(gateway, new).status_code == 200
    assert login(gateway, "alice", PASSWORD).status_code == 401
    assert login(gateway, "alice", OTHER_PASSWORD).status_code == 200


def test_demoting_an_admin_ends_their_logins(gateway: Gateway) -> None:
    gateway.user("root", PASSWORD, admin=True)
    gateway.user("carol", OTHER_PASSWORD, admin=True)
    carol = gateway.login("carol", OTHER_PASSWORD)
    root = gateway.login("root", PASSWORD)
    assert me(gateway, carol).json()["role"] == "admin"
    response = httpx.patch(
        gateway.url + "/api/v1/admin/users/carol",
        json={"role": "user"},
        headers={"Authorization": f"Bearer {root}"},
    )
    assert response.status_code == 200 and response.json()["role"] == "user"
    assert me(gateway, carol).status_code == 401
    assert me(gateway, gateway.login("carol", OTHER_PASSWORD)).json()["role"] == "user"


def test_login_cookie_is_httponly_and_strict_and_authenticates(gateway: Gateway) -> None:
    gateway.user("alice", PASSWORD)
    response = login(gateway, "alice", PASSWORD, cookie=True)
    remember(response.json()["token"])
    cookie = response.headers["set-cookie"]
    assert "chatgate_session=" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    with httpx.Client(base_url=gateway.url, cookies=response.cookies) as browser:
        assert browser.get("/api/v1/auth/me").json()["username"] == "alice"
        assert browser.get("/v1/models").status_code == 200
        out = browser.post("/api/v1/auth/logout")
        assert out.status_code == 204 and 'chatgate_session=""' in out.headers["set-cookie"]
    with httpx.Client(base_url=gateway.url, cookies=response.cookies) as stale:
        assert stale.get("/api/v1/auth/me").status_code == 401


def test_failed_logins_are_limited_per_user_name(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gateway = make_gateway(login_max_failures=3)
    gateway.user("alice", PASSWORD)
    codes = [login(gateway, "alice", f"guess-{i}-x").status_code for i in range(3)]
    assert codes == [401, 401, 401]
    blocked = login(gateway, "alice", PASSWORD)
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "too_many_attempts"
    assert int(blocked.headers["retry-after"]) > 0


def test_failed_logins_are_limited_per_client_address(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gateway = make_gateway(login_max_failures=3)
    gateway.user("alice", PASSWORD)
    codes = [login(gateway, f"user{i}", OTHER_PASSWORD).status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]
    assert login(gateway, "alice", PASSWORD).status_code == 429


def test_the_limit_window_passes(make_gateway) -> None:  # type: ignore[no-untyped-def]
    clock = FixedClock(time.time())
    gateway = make_gateway(clock=clock, login_max_failures=2, login_window_seconds=60)
    gateway.user("alice", PASSWORD)
    for _ in range(2):
        login(gateway, "alice", OTHER_PASSWORD)
    assert login(gateway, "alice", PASSWORD).status_code == 429
    clock.advance(61)
    assert login(gateway, "alice", PASSWORD).status_code == 200


@pytest.mark.parametrize("body", [{}, {"username": "alice"}, {"username": 5, "password": "x"}])
def test_malformed_login_gets_a_clear_error(gateway: Gateway, body: dict[str, object]) -> None:
    response = httpx.post(gateway.url + "/api/v1/auth/login", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("path", "fields"),
    [("/api/v1/auth/login", ("username", "password")), ("/token", ("u", "p"))],
)
def test_a_disabled_account_says_so_to_its_right_password_only(
    gateway: Gateway, path: str, fields: tuple[str, str]
) -> None:
    gateway.user("alice", PASSWORD)
    gateway.run(gateway.services.accounts.update_user("alice", disabled=True))
    name, secret = fields

    def attempt(user: str, password: str) -> tuple[int, object]:
        response = httpx.post(gateway.url + path, json={name: user, secret: password})
        return response.status_code, without_request_id(response.json())

    right, wrong = attempt("alice", PASSWORD), attempt("alice", OTHER_PASSWORD)
    assert wrong == attempt("nobody", OTHER_PASSWORD)
    assert wrong[0] == 401 and "disabled" not in str(wrong[1])
    assert right[0] == 403 and "disabled" in str(right[1])
