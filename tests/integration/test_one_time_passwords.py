"""One-time passwords: a password an administrator generates (or sets as one-time) lets its
owner log in only far enough to choose a new one, through the native API of a real server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from support import Gateway, remember

ADMIN_PASSWORD = remember("granite-Falcon-3318")
CHOSEN = remember("meadow-Lantern-5521")
ADMIN_SET = remember("copper-Willow-7734")

_CLIENTS: list[httpx.Client | openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def sdk(gateway: Gateway, credential: str) -> openai.OpenAI:
    made = openai.OpenAI(base_url=gateway.base_url, api_key=credential, max_retries=0)
    _CLIENTS.append(made)
    return made


def client(gateway: Gateway, credential: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    made = httpx.Client(base_url=gateway.url + "/api/v1", headers=headers)
    _CLIENTS.append(made)
    return made


@pytest.fixture
def admin(gateway: Gateway) -> httpx.Client:
    gateway.user("root", ADMIN_PASSWORD, admin=True)
    return client(gateway, gateway.login("root", ADMIN_PASSWORD))


def log_in(gateway: Gateway, name: str, password: str, **extra: object) -> httpx.Response:
    body = {"username": name, "password": password, **extra}
    return client(gateway).post("/auth/login", json=body)


def listed(admin: httpx.Client, name: str) -> dict[str, object]:
    users: list[dict[str, object]] = admin.get("/admin/users").json()
    return next(u for u in users if u["name"] == name)


def refused_for_password_change(response: httpx.Response) -> bool:
    error = response.json()["error"]
    return (
        response.status_code == 403
        and error["code"] == "password_change_required"
        and error["type"] == "permission_error"
    )


def test_a_generated_password_only_lets_its_owner_choose_a_new_one(
    gateway: Gateway, admin: httpx.Client
) -> None:
    made = admin.post("/admin/users", json={"name": "erin"})
    assert made.status_code == 201
    assert made.json()["password_change_required"] is True
    one_time = remember(made.json()["password"])
    assert listed(admin, "erin")["password_change_required"] is True

    # The login succeeds only far enough to say what must come first, and sets no cookie.
    first = log_in(gateway, "erin", one_time, cookie=True)
    assert first.status_code == 200
    assert first.json()["password_change_required"] is True
    assert first.json()["user"]["password_change_required"] is True
    assert "set-cookie" not in first.headers
    session = client(gateway, remember(first.json()["token"]))
    for method, path in (
        ("GET", "/auth/me"),
        ("GET", "/keys"),
        ("POST", "/keys"),
        ("GET", "/conversations"),
        ("GET", "/usage/today"),
        ("GET", "/models"),
    ):
        answer = session.request(method, path, json={} if method == "POST" else None)
        assert refused_for_password_change(answer), (method, path, answer.text)
    api = sdk(gateway, first.json()["token"])
    with pytest.raises(openai.PermissionDeniedError) as refused:
        api.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "password_change_required"

    # The one-time password cannot be kept as the new one.
    same = log_in(gateway, "erin", one_time, new_password=one_time)
    assert same.status_code == 400 and same.json()["error"]["param"] == "new_password"

    chosen = log_in(gateway, "erin", one_time, new_password=CHOSEN, cookie=True)
    assert chosen.status_code == 200
    assert chosen.json()["password_change_required"] is False
    assert "chatgate_session=" in chosen.headers["set-cookie"]
    token = remember(chosen.json()["token"])
    assert client(gateway, token).get("/auth/me").json()["username"] == "erin"
    api = sdk(gateway, token)
    reply = api.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "hello"}]
    )
    assert reply.choices[0].message.content

    # The restricted login ended with the change; the one-time password is gone.
    assert session.get("/auth/me").status_code == 401
    old = log_in(gateway, "erin", one_time)
    assert old.status_code == 401 and old.json()["error"]["code"] == "invalid_credentials"
    assert log_in(gateway, "erin", CHOSEN).json()["password_change_required"] is False
    assert listed(admin, "erin")["password_change_required"] is False
    assert one_time not in admin.get("/admin/audit").text


def test_a_reset_with_a_generated_password_leaves_the_users_keys_working(
    gateway: Gateway, admin: httpx.Client
) -> None:
    gateway.user("fay", CHOSEN)
    key = gateway.key("fay")
    before = remember(log_in(gateway, "fay", CHOSEN).json()["token"])

    reset = admin.patch("/admin/users/fay", json={"generate_password": True})
    assert reset.status_code == 200
    assert reset.json()["password_change_required"] is True
    one_time = remember(reset.json()["password"])
    assert len(one_time) >= 16

    # Every login ended; a new one is held back; the key the user made still works.
    assert client(gateway, before).get("/auth/me").status_code == 401
    assert log_in(gateway, "fay", CHOSEN).status_code == 401
    assert log_in(gateway, "fay", one_time).json()["password_change_required"] is True
    with_key = client(gateway, key)
    assert with_key.get("/auth/me").json()["username"] == "fay"
    api = sdk(gateway, key)
    assert api.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "still here?"}]
    ).choices

    # The change-password route takes the one-time password and clears the mark.
    new = remember("harbour-Maple-9042")
    changed = with_key.post(
        "/auth/password", json={"current_password": one_time, "new_password": new}
    )
    assert changed.status_code == 200
    assert changed.json()["password_change_required"] is False
    assert client(gateway, remember(changed.json()["token"])).get("/keys").status_code == 200
    assert listed(admin, "fay")["password_change_required"] is False
    assert log_in(gateway, "fay", one_time).status_code == 401


def test_a_password_the_admin_chose_is_one_time_only_when_asked(
    gateway: Gateway, admin: httpx.Client
) -> None:
    kept = admin.post("/admin/users", json={"name": "gil", "password": ADMIN_SET})
    assert kept.json()["password_change_required"] is False and kept.json()["password"] is None
    assert log_in(gateway, "gil", ADMIN_SET).json()["password_change_required"] is False

    asked = admin.post(
        "/admin/users", json={"name": "hal", "password": ADMIN_SET, "one_time": True}
    )
    assert asked.json()["password_change_required"] is True
    assert log_in(gateway, "hal", ADMIN_SET).json()["password_change_required"] is True

    lasting = admin.post("/admin/users", json={"name": "ida", "one_time": False})
    generated = remember(lasting.json()["password"])
    assert log_in(gateway, "ida", generated).json()["password_change_required"] is False

    set_again = admin.patch("/admin/users/gil", json={"password": ADMIN_SET, "one_time": True})
    assert set_again.json()["password_change_required"] is True
    assert set_again.json()["password"] is None
    plain_reset = admin.patch("/admin/users/hal", json={"password": CHOSEN})
    assert plain_reset.json()["password_change_required"] is False
    assert log_in(gateway, "hal", CHOSEN).json()["password_change_required"] is False


def test_users_from_the_command_line_or_a_csv_file_keep_their_passwords(
    gateway: Gateway, admin: httpx.Client
) -> None:
    gateway.user("jon", CHOSEN)  # as `chatgate users create` does
    assert log_in(gateway, "jon", CHOSEN).json()["password_change_required"] is False
    imported = admin.post(
        "/admin/users/import",
        content=f"username,password\nkim,{ADMIN_SET}\n".encode(),
        headers={"content-type": "text/csv"},
    )
    assert imported.json()["created"] == 1
    assert log_in(gateway, "kim", ADMIN_SET).json()["password_change_required"] is False
    assert listed(admin, "kim")["password_change_required"] is False


def test_a_reset_that_makes_no_sense_is_refused(gateway: Gateway, admin: httpx.Client) -> None:
    gateway.user("lee", CHOSEN)
    both = admin.patch("/admin/users/lee", json={"password": ADMIN_SET, "generate_password": True})
    assert both.status_code == 400 and both.json()["error"]["param"] == "password"
    alone = admin.patch("/admin/users/lee", json={"one_time": True})
    assert alone.status_code == 400 and alone.json()["error"]["param"] == "one_time"
    assert log_in(gateway, "lee", CHOSEN).json()["password_change_required"] is False
    short = log_in(gateway, "lee", CHOSEN, new_password="short")
    assert short.status_code == 422


def test_the_one_time_login_itself_may_change_the_password_or_log_out(
    gateway: Gateway, admin: httpx.Client
) -> None:
    one_time = remember(admin.post("/admin/users", json={"name": "hal"}).json()["password"])
    session = client(gateway, remember(log_in(gateway, "hal", one_time).json()["token"]))
    assert refused_for_password_change(session.get("/auth/me"))

    changed = session.post(
        "/auth/password", json={"current_password": one_time, "new_password": CHOSEN}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["password_change_required"] is False
    assert client(gateway, remember(changed.json()["token"])).get("/keys").status_code == 200
    assert log_in(gateway, "hal", one_time).status_code == 401

    # A second one-time login that only wants to leave may log out.
    again = remember(
        admin.patch("/admin/users/hal", json={"generate_password": True}).json()["password"]
    )
    leaving = client(gateway, remember(log_in(gateway, "hal", again).json()["token"]))
    assert leaving.post("/auth/logout").status_code in (200, 204)
    assert (
        leaving.post(
            "/auth/password", json={"current_password": again, "new_password": CHOSEN}
        ).status_code
        == 401
    )
