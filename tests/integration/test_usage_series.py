"""Usage per day for the console's charts: requests, tokens and cost by user or by model,
errors and 429s, latency percentiles, in the server's days, and the CSV behind each chart."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openai
import pytest
from faulty_upstream import FaultyUpstream, status
from support import Gateway, remember

from chatgate.store.tables import RequestLog

ADMIN_PASSWORD = remember("orchard-Falcon-2261")
ZONE = "Asia/Shanghai"
CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    server = FaultyUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway], upstream: FaultyUpstream) -> Gateway:
    return make_gateway(
        timezone=ZONE,
        default_daily_requests=3,
        providers=[
            {"name": "flaky", "base_url": upstream.base_url, "api_keys": ["k"]},
        ],
        models=[{"name": "solo", "deployments": ["flaky"], "upstream_name": "demo"}],
        routing={"retries": 0, "max_retry_wait": 0.1, "breaker_failures": 1000},
        models_refresh_seconds=0,
    )


@pytest.fixture
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    gateway.user("root", ADMIN_PASSWORD, admin=True)
    token = gateway.login("root", ADMIN_PASSWORD)
    with httpx.Client(
        base_url=gateway.url + "/api/v1/admin", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client


def today() -> str:
    return datetime.now(ZoneInfo(ZONE)).date().isoformat()


def client(gateway: Gateway, user: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key(user), max_retries=0)


def daily(admin: httpx.Client, **params: str) -> dict[str, Any]:
    answer = admin.get("/usage/daily", params=params)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def test_the_fourth_request_over_a_cap_of_three_is_counted_as_a_429(
    gateway: Gateway, admin: httpx.Client
) -> None:
    alice = client(gateway, "alice")
    for _ in range(3):
        alice.chat.completions.create(model="demo", **CHAT)
    with pytest.raises(openai.RateLimitError):
        alice.chat.completions.create(model="demo", **CHAT)
    gateway.flush()

    found = daily(admin)
    assert found["by"] == "user" and found["timezone"] == ZONE
    assert len(found["days"]) == 14 and found["days"][-1] == today() == found["end"]
    [series] = found["series"]
    assert series["key"] == "alice"
    assert series["requests"][-1] == 3 and sum(series["requests"]) == 3
    assert series["tokens"][-1] > 0
    assert found["rate_limited"][-1] == 1 and found["errors"][-1] == 0
    assert found["latency_ms"]["p50"][-1] is not None
    assert found["latency_ms"]["p95"][-1] >= found["latency_ms"]["p50"][-1]
    assert found["first_token_ms"]["p50"][-1] is not None
    assert found["latency_ms"]["p50"][0] is None  # a day without requests


def test_upstream_failures_are_errors_and_an_upstream_429_is_a_429(
    gateway: Gateway, admin: httpx.Client, upstream: FaultyUpstream
) -> None:
    bob = client(gateway, "bob")
    upstream.enqueue(status(500), status(429, retry_after="0"))
    with pytest.raises(openai.InternalServerError):
        bob.chat.completions.create(model="solo", **CHAT)
    with pytest.raises(openai.RateLimitError):
        bob.chat.completions.create(model="solo", **CHAT)
    bob.chat.completions.create(model="solo", **CHAT)
    gateway.flush()

    found = daily(admin, by="model")
    assert found["errors"][-1] == 1 and found["rate_limited"][-1] == 1
    [series] = found["series"]
    # Failed requests are given back: only the answered one counts.
    assert series["key"] == "solo" and series["requests"][-1] == 1


def test_series_stack_by_model_and_narrow_to_one_user(
    gateway: Gateway, admin: httpx.Client
) -> None:
    client(gateway, "carol").chat.completions.create(model="demo", **CHAT)
    dave = client(gateway, "dave")
    dave.chat.completions.create(model="solo", **CHAT)
    dave.chat.completions.create(model="demo", **CHAT)
    gateway.flush()

    by_model = {s["key"]: s["requests"][-1] for s in daily(admin, by="model")["series"]}
    assert by_model == {"demo": 2, "solo": 1}
    by_user = [(s["key"], s["requests"][-1]) for s in daily(admin)["series"]]
    assert by_user == [("dave", 2), ("carol", 1)]  # the largest first
    only_dave = daily(admin, by="model", user="dave")
    assert {s["key"] for s in only_dave["series"]} == {"demo", "solo"}
    assert admin.get("/usage/daily", params={"user": "nobody"}).status_code == 404


def test_request_log_rows_fall_in_the_days_of_the_servers_zone(
    gateway: Gateway, admin: httpx.Client
) -> None:
    gateway.user("erin")
    erin = gateway.run(gateway.services.accounts.get_user("erin"))
    zone = ZoneInfo(ZONE)
    day = date(2026, 3, 10)
    late = datetime(2026, 3, 10, 23, 50, tzinfo=zone).timestamp()
    early = datetime(2026, 3, 11, 0, 10, tzinfo=zone).timestamp()
    for at, state in ((late, "error"), (early, "refused"), (early + 1, "error")):
        gateway.services.writer.insert(RequestLog, _row(erin.id, at, state))
    found = daily(admin, start="2026-03-10", end="2026-03-11")
    assert found["days"] == ["2026-03-10", "2026-03-11"]
    assert found["errors"] == [1, 1] and found["rate_limited"] == [0, 1]
    assert found["start"] == day.isoformat()


def _row(user_id: int, at: float, state: str) -> dict[str, Any]:
    return {
        "created_at": at,
        "user_id": user_id,
        "key_id": 0,
        "model": "demo",
        "provider": None,
        "status": state,
        "error_code": "upstream_error" if state == "error" else "insufficient_quota",
        "finish_reason": None,
        "counted": False,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost": 0.0,
        "latency_ms": 0.0,
        "first_token_ms": None,
    }


def test_a_range_too_long_or_backwards_is_refused_with_422(admin: httpx.Client) -> None:
    start = date(2025, 1, 1)
    too_long = admin.get(
        "/usage/daily",
        params={"start": start.isoformat(), "end": (start + timedelta(366)).isoformat()},
    )
    assert too_long.status_code == 422 and "366" in too_long.json()["error"]["message"]
    longest = {"start": start.isoformat(), "end": (start + timedelta(365)).isoformat()}
    assert len(daily(admin, **longest)["days"]) == 366
    backwards = admin.get("/usage/daily", params={"start": "2025-02-01", "end": "2025-01-01"})
    assert backwards.status_code == 422
    assert admin.get("/usage/daily", params={"start": "yesterday"}).status_code == 422
    assert admin.get("/usage/daily", params={"by": "key"}).status_code == 422


def test_each_chart_downloads_as_csv(gateway: Gateway, admin: httpx.Client) -> None:
    alice = client(gateway, "alice")
    for _ in range(4):
        with contextlib.suppress(openai.RateLimitError):
            alice.chat.completions.create(model="demo", **CHAT)
    gateway.flush()

    def rows(chart: str) -> list[list[str]]:
        answer = admin.get("/usage/daily.csv", params={"chart": chart})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        assert answer.headers["content-disposition"].startswith("attachment; filename=")
        return list(csv.reader(io.StringIO(answer.text)))

    assert rows("requests") == [["day", "user", "requests"], [today(), "alice", "3"]]
    assert rows("tokens")[0] == ["day", "user", "tokens"]
    errors = rows("errors")
    assert errors[0] == ["day", "errors", "rate_limited"] and errors[-1] == [today(), "0", "1"]
    assert len(errors) == 15
    latency = rows("latency")
    assert latency[0][0] == "day" and len(latency[0]) == 5
    assert latency[-1][0] == today() and all(latency[-1][1:])
    assert admin.get("/usage/daily.csv", params={"chart": "pie"}).status_code == 422


def test_a_name_that_would_be_a_spreadsheet_formula_is_quoted(
    gateway: Gateway, admin: httpx.Client
) -> None:
    client(gateway, "-cmd").chat.completions.create(model="demo", **CHAT)
    gateway.flush()
    text = admin.get("/usage/daily.csv", params={"chart": "requests"}).text
    assert f"{today()},'-cmd,1" in text


def test_normal_users_may_not_read_everyones_usage(gateway: Gateway) -> None:
    key = gateway.key("frank")
    for path in ("/usage/daily", "/usage/daily.csv"):
        answer = httpx.get(
            gateway.url + "/api/v1/admin" + path, headers={"Authorization": f"Bearer {key}"}
        )
        assert answer.status_code == 403


def test_the_key_list_shows_owner_label_prefix_dates_and_own_limits(
    gateway: Gateway, admin: httpx.Client
) -> None:
    made = admin.post("/users/gail/keys", json={"name": "ci", "expires_days": 30})
    assert made.status_code == 404  # no such user yet
    gateway.user("gail")
    made = admin.post("/users/gail/keys", json={"name": "ci", "expires_days": 30}).json()
    key = remember(made["key"])
    admin.put(f"/keys/{made['id']}/quota", json={"daily_requests": 2})
    api = openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)
    api.chat.completions.create(model="demo", **CHAT)
    gateway.flush()
    [listed] = [k for k in admin.get("/keys").json() if k["id"] == made["id"]]
    assert listed["user"] == "gail" and listed["name"] == "ci"
    assert listed["prefix"] == key[: len(listed["prefix"])] and key not in str(listed)
    assert listed["created_at"] <= listed["last_used_at"] < listed["expires_at"]
    assert listed["quota"]["daily_requests"] == 2 and listed["active"] is True
