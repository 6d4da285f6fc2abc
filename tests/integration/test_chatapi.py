"""The ChatAPI protocol (``POST /token``, ``GET /api?q=``) as its clients use it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
from databases import stored_bytes
from support import Gateway, free_port, remember

from chatgate.core.clock import FixedClock

PASSWORD = remember("ember-Quartz-2207")
ZONE = "Asia/Shanghai"


def get_token(gateway: Gateway, name: str = "alice", password: str = PASSWORD) -> httpx.Response:
    return httpx.post(gateway.url + "/token", json={"u": name, "p": password})


def ask(gateway: Gateway, token: str | None, q: str | None = "你好") -> httpx.Response:
    headers = {"Authorization": "Bearer " + token} if token is not None else {}
    params = {"q": q} if q is not None else {}
    return httpx.get(gateway.url + "/api", params=params, headers=headers, timeout=30)


def test_token_is_created_then_handed_out_again_while_valid(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(timezone=ZONE)
    gateway.user("alice", PASSWORD)
    first = get_token(gateway)
    assert first.status_code == 201
    body = first.json()
    assert body["statu"] is True
    message = body["message"]
    remember(message["token"])
    assert message["username"] == "alice"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", message["expiration_time"])
    expires = datetime.strptime(message["expiration_time"], "%Y-%m-%d %H:%M:%S")
    expected = datetime.fromtimestamp(time.time() + 30 * 86400, ZoneInfo(ZONE))
    assert abs((expires - expected.replace(tzinfo=None)).total_seconds()) < 120
    again = get_token(gateway)
    assert again.status_code == 200 and again.json() == body


def test_token_is_stored_only_as_its_claims(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway()
    gateway.user("alice", PASSWORD)
    token = remember(get_token(gateway).json()["message"]["token"])
    gateway.flush()
    gateway.stop()
    stored = stored_bytes(gateway.settings.data_dir)
    assert b"chatapi_tokens" in stored  # the table is there, the token is not
    assert token.encode() not in stored
    assert token.split(".")[2].encode() not in stored
    assert PASSWORD.encode() not in stored


def test_wrong_password_and_unknown_user_get_the_same_401(gateway: Gateway) -> None:
    gateway.user("alice", PASSWORD)
    wrong = get_token(gateway, "alice", PASSWORD + "!")
    unknown = get_token(gateway, "mallory", PASSWORD)
    expected = {"statu": False, "message": "Invalid username or password"}
    assert (wrong.status_code, wrong.json()) == (401, expected)
    assert (unknown.status_code, unknown.json()) == (401, expected)


def test_malformed_token_requests_get_400(gateway: Gateway) -> None:
    for body in ({"u": "alice"}, {"u": 1, "p": 2}):
        response = httpx.post(gateway.url + "/token", json=body)
        assert response.status_code == 400 and response.json()["statu"] is False
    garbage = httpx.post(gateway.url + "/token", content=b"u=alice")
    assert garbage.status_code == 400 and garbage.json()["statu"] is False


def test_api_answers_the_question(gateway: Gateway) -> None:
    gateway.user("alice", PASSWORD)
    token = remember(get_token(gateway).json()["message"]["token"])
    response = ask(gateway, token, "What is a tree?")
    assert response.status_code == 200
    body = response.json()
    assert body["statu"] is True and "What is a tree?" in body["message"]


def test_api_refuses_missing_invalid_and_expired_tokens(
    make_gateway: Callable[..., Gateway],
) -> None:
    clock = FixedClock(time.time())
    gateway = make_gateway(clock=clock, jwt_lifetime_days=1)
    gateway.user("alice", PASSWORD)
    token = remember(get_token(gateway).json()["message"]["token"])
    assert ask(gateway, token).status_code == 200
    missing = ask(gateway, None)
    assert missing.status_code == 401 and missing.json()["statu"] is False
    assert ask(gateway, token[:-3] + "abc").status_code == 401
    clock.advance(86400 + 5)
    expired = ask(gateway, token)
    assert expired.status_code == 401 and expired.json()["statu"] is False
    assert get_token(gateway).status_code == 201  # a new one, as the old one has expired


def test_api_needs_a_question(gateway: Gateway) -> None:
    key = gateway.key("alice")
    for q in (None, "", "   "):
        response = ask(gateway, key, q)
        assert response.status_code == 400 and response.json()["statu"] is False


def test_eleventh_question_of_the_day_gets_429_and_midnight_renews(
    make_gateway: Callable[..., Gateway],
) -> None:
    zone = ZoneInfo(ZONE)
    evening = datetime(2026, 3, 1, 23, 58, 0, tzinfo=zone).timestamp()
    clock = FixedClock(evening, ZONE)
    gateway = make_gateway(clock=clock, timezone=ZONE, default_daily_requests=10)
    gateway.user("alice", PASSWORD)
    token = remember(get_token(gateway).json()["message"]["token"])
    assert [ask(gateway, token).status_code for _ in range(10)] == [200] * 10
    refused = ask(gateway, token)
    assert refused.status_code == 429
    assert refused.json() == {"statu": False, "message": "Token access limit reached."}
    assert 60 <= int(refused.headers["retry-after"]) <= 120
    clock.advance(150)  # 00:00:30 in Shanghai, 16:00:30 in UTC
    assert ask(gateway, token).status_code == 200


def test_failed_questions_do_not_use_the_daily_cap(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(
        default_daily_requests=1,
        openai_base_url=f"http://127.0.0.1:{free_port()}/v1",
        openai_api_key="k",
        models=[{"name": "gpt-x", "deployments": ["openai"]}],
        compat_model="gpt-x",
    )
    key = gateway.key("alice")
    for _ in range(3):
        failed = ask(gateway, key)
        assert failed.status_code == 502 and failed.json()["statu"] is False
    gateway.flush()
    assert [row.counted for row in gateway.request_log()] == [False, False, False]


def test_logging_out_everywhere_makes_token_give_a_new_one(gateway: Gateway) -> None:
    gateway.user("alice", PASSWORD)
    old = remember(get_token(gateway).json()["message"]["token"])
    out = httpx.post(
        gateway.url + "/api/v1/auth/logout",
        json={"everywhere": True},
        headers={"Authorization": f"Bearer {old}"},
    )
    assert out.status_code == 204
    assert ask(gateway, old).status_code == 401
    fresh = get_token(gateway)
    assert fresh.status_code == 201
    new = remember(fresh.json()["message"]["token"])
    assert new != old and ask(gateway, new).status_code == 200
