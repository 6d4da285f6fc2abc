"""Usage per day for the console's charts: requests, tokens and cost by user or by model,
errors and 429s, latency percentiles, in the server's days, and the CSV behind each chart."""

from __future__ import annotations

import contextlib
import csv
import io
import random
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openai
import pytest
from faulty_upstream import FaultyUpstream, status
from sqlalchemy import insert
from support import Gateway, remember

from chatgate.core.clock import Clock
from chatgate.core.usage_series import DailySeries, UsageSeries
from chatgate.settings import Settings
from chatgate.store.db import Database
from chatgate.store.tables import RequestLog, UsageDaily, User
from chatgate.store.writer import BatchWriter

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


# ---- a busy log, summed by the database and counted here one row at a time -----------------

BUSY_ZONE = "Europe/Berlin"  # 2026-03-29 has 23 hours there
BUSY_FIRST, BUSY_LAST = date(2026, 3, 22), date(2026, 4, 4)
ONLY_REFUSED, NO_FIRST_TOKENS = date(2026, 3, 25), date(2026, 3, 27)
ONE_ANSWERED = date(2026, 3, 31)  # one request ended ok: both percentiles are its times
OUTCOMES = (  # status, error code, weight
    ("ok", None, 70),
    ("ok", "upstream_rate_limited", 1),  # a 429 by its code, though it says ok
    ("error", "upstream_error", 8),
    ("error", "upstream_rate_limited", 4),
    ("interrupted", None, 3),
    ("refused", "insufficient_quota", 8),
    ("cancelled", None, 6),
)


def _busy_log(user_ids: list[int], models: list[str], count: int) -> list[dict[str, Any]]:
    """``count`` requests at random times from a day before the range to a day after it, plus
    one at each midnight of the range and its end, and one just before each."""
    pick = random.Random(20260329)
    zone = ZoneInfo(BUSY_ZONE)
    midnights = [
        datetime.combine(BUSY_FIRST + timedelta(n), datetime.min.time(), zone).timestamp()
        for n in range((BUSY_LAST - BUSY_FIRST).days + 2)
    ]
    low, high = midnights[0] - 86_400, midnights[-1] + 86_400
    times = [pick.uniform(low, high) for _ in range(count)]
    times += midnights + [m - 0.001 for m in midnights]
    weights = [w for *_, w in OUTCOMES]
    rows = []
    for at in times:
        status_, code, _ = pick.choices(OUTCOMES, weights)[0]
        day = datetime.fromtimestamp(at, zone).date()
        if day == ONLY_REFUSED:
            status_, code = "refused", "insufficient_quota"
        elif day == ONE_ANSWERED and status_ == "ok":
            status_, code = "cancelled", None
        first_token = None if day == NO_FIRST_TOKENS or pick.random() < 0.05 else 0.0
        latency = pick.randint(1, 40_000) / 8  # eighths: ties, and halves for the rounding
        rows.append(
            {
                "created_at": at,
                "user_id": pick.choice(user_ids),
                "key_id": 0,
                "model": pick.choice(models),
                "provider": None,
                "status": status_,
                "error_code": code,
                "finish_reason": None,
                "counted": status_ == "ok",
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost": 0.0,
                "latency_ms": latency,
                "first_token_ms": None
                if first_token is None
                else pick.randint(0, 8_000) / 4 + (latency % 3),
            }
        )
    noon = datetime.combine(ONE_ANSWERED, datetime.min.time(), zone) + timedelta(hours=12)
    rows.append({**rows[0], "created_at": noon.timestamp(), "status": "ok", "error_code": None})
    rows[-1].update(latency_ms=812.25, first_token_ms=95.75)
    return rows


def _nearest_rank(values: list[float], share: Fraction) -> float | None:
    """The nearest-rank percentile, its rank counted in whole numbers."""
    if not values:
        return None
    ordered = sorted(values)
    rank = -(-share.numerator * len(ordered) // share.denominator)  # ceil, exactly
    return round(ordered[rank - 1], 1)


def _expected_log(rows: list[dict[str, Any]], days: list[str]) -> dict[str, Any]:
    zone = ZoneInfo(BUSY_ZONE)
    errors, limited = dict.fromkeys(days, 0), dict.fromkeys(days, 0)
    latency: dict[str, list[float]] = {day: [] for day in days}
    first_token: dict[str, list[float]] = {day: [] for day in days}
    for row in rows:
        day = datetime.fromtimestamp(row["created_at"], zone).date().isoformat()
        if day not in errors:
            continue
        if row["status"] == "refused" or row["error_code"] == "upstream_rate_limited":
            limited[day] += 1
        elif row["status"] in ("error", "interrupted"):
            errors[day] += 1
        elif row["status"] == "ok":
            latency[day].append(row["latency_ms"])
            if row["first_token_ms"] is not None:
                first_token[day].append(row["first_token_ms"])
    half, most = Fraction(1, 2), Fraction(19, 20)
    return {
        "errors": [errors[d] for d in days],
        "rate_limited": [limited[d] for d in days],
        "latency": [[_nearest_rank(latency[d], s) for d in days] for s in (half, most)],
        "first_token": [[_nearest_rank(first_token[d], s) for d in days] for s in (half, most)],
    }


def _busy_books(user_ids: list[int], models: list[str], days: list[str]) -> list[dict[str, Any]]:
    """The usage books of a few users and models, with the day before and after the range;
    costs in 64ths, so that their sums are exact in any order."""
    pick = random.Random(7)
    return [
        {
            "user_id": user_id,
            "key_id": key_id,
            "model": model,
            "day": day,
            "requests": pick.randint(0, 500),
            "errors": 0,
            "prompt_tokens": pick.randint(0, 90_000),
            "completion_tokens": pick.randint(0, 90_000),
            "cost": pick.randint(0, 6_400) / 64,
        }
        for day in days
        for user_id in user_ids
        for key_id in (0, 1)
        for model in models
        if pick.random() < 0.7
    ]


def _expected_series(
    books: list[dict[str, Any]], days: list[str], name: Callable[[dict[str, Any]], str]
) -> list[tuple[str, list[int], list[int], list[float]]]:
    found: dict[str, tuple[list[int], list[int], list[float]]] = {}
    for row in books:
        if row["day"] not in days:
            continue
        n = days.index(row["day"])
        requests, tokens, cost = found.setdefault(
            name(row), ([0] * len(days), [0] * len(days), [0.0] * len(days))
        )
        requests[n] += row["requests"]
        tokens[n] += row["prompt_tokens"] + row["completion_tokens"]
        cost[n] += row["cost"]
    listed = [(key, *values) for key, values in found.items()]
    return sorted(listed, key=lambda s: (-sum(s[1]), -sum(s[2]), s[0]))


async def test_twenty_thousand_logged_requests_are_summed_per_day_as_counted_one_by_one(
    make_settings: Callable[..., Settings],
) -> None:
    db = Database(make_settings(timezone=BUSY_ZONE).resolved_database_url)
    await db.upgrade()
    names, models = ["ann", "ben", "cai", "dee", "eli"], ["demo", "solo", "large"]
    async with db.engine.begin() as conn:
        made = await conn.execute(
            insert(User).returning(User.id, User.name),
            [{"name": name, "created_at": 0.0} for name in names],
        )
        user_ids = {user_id: name for user_id, name in made.all()}
        log = _busy_log(list(user_ids), models, 20_000)
        await conn.execute(insert(RequestLog), log)
        span = (BUSY_LAST - BUSY_FIRST).days + 3
        all_days = [(BUSY_FIRST + timedelta(n - 1)).isoformat() for n in range(span)]
        books = _busy_books(list(user_ids), models, all_days)
        await conn.execute(insert(UsageDaily), books)
    usage = UsageSeries(db, BatchWriter(db), Clock(BUSY_ZONE))
    try:
        by_user = await usage.daily(start=BUSY_FIRST, end=BUSY_LAST, by="user")
        by_model = await usage.daily(start=BUSY_FIRST, end=BUSY_LAST, by="model")
        ben = next(i for i, name in user_ids.items() if name == "ben")
        bens = await usage.daily(start=BUSY_FIRST, end=BUSY_LAST, by="model", user_id=ben)
    finally:
        await db.close()

    days = all_days[1:-1]
    assert by_user.days == days and len(days) == 14
    expected = _expected_log(log, days)
    assert sum(expected["errors"]) > 1_000 and sum(expected["rate_limited"]) > 2_000
    for found in (by_user, by_model):
        assert found.errors == expected["errors"]
        assert found.rate_limited == expected["rate_limited"]
        assert [found.latency_ms.p50, found.latency_ms.p95] == expected["latency"]
        assert [found.first_token_ms.p50, found.first_token_ms.p95] == expected["first_token"]
    quiet = days.index(ONLY_REFUSED.isoformat())
    assert by_user.latency_ms.p50[quiet] is None and by_user.errors[quiet] == 0
    assert by_user.first_token_ms.p95[days.index(NO_FIRST_TOKENS.isoformat())] is None
    assert by_user.latency_ms.p95[days.index(NO_FIRST_TOKENS.isoformat())] is not None
    one = days.index(ONE_ANSWERED.isoformat())
    assert by_user.latency_ms.p50[one] == by_user.latency_ms.p95[one] == 812.2
    assert by_user.first_token_ms.p50[one] == by_user.first_token_ms.p95[one] == 95.8

    only_ben = _expected_log([row for row in log if row["user_id"] == ben], days)
    assert bens.errors == only_ben["errors"] and bens.rate_limited == only_ben["rate_limited"]
    assert [bens.latency_ms.p50, bens.latency_ms.p95] == only_ben["latency"]
    assert [bens.first_token_ms.p50, bens.first_token_ms.p95] == only_ben["first_token"]

    def listed(found: DailySeries) -> list[tuple[str, list[int], list[int], list[float]]]:
        return [(s.key, s.requests, s.tokens, s.cost) for s in found.series]

    assert listed(by_user) == _expected_series(books, days, lambda row: user_ids[row["user_id"]])
    assert listed(by_model) == _expected_series(books, days, lambda row: row["model"])
    ben_books = [row for row in books if row["user_id"] == ben]
    assert listed(bens) == _expected_series(ben_books, days, lambda row: row["model"])
