"""The native routes a web page needs, over real HTTP against a live server: pinning and the
sidebar's order, search in Chinese, a conversation's own reply settings, importing a ChatGPT
export by upload, "what will be sent", the models a user may pick, today's meter, and the
answers a login or a used-up quota gets. The page uses them with its login cookie, as here."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from support import Gateway, ServerThread

API = "/api/v1/conversations"
PASSWORD = "correct horse battery"
EXPORT = Path(__file__).parent.parent / "fixtures" / "chatgpt_conversations.json"


class Page:
    """What the web page is to the server: a browser with the login cookie, sending JSON from
    its own origin (the CSRF rules of cookie writes apply)."""

    def __init__(self, gateway: Gateway, name: str) -> None:
        gateway.user(name, PASSWORD)
        self.http = httpx.Client(base_url=gateway.url, timeout=30)
        login = self.http.post(
            "/api/v1/auth/login", json={"username": name, "password": PASSWORD, "cookie": True}
        )
        assert login.status_code == 200, login.text
        assert "chatgate_session" in self.http.cookies
        self.http.headers["sec-fetch-site"] = "same-origin"

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def new(self, title: str, **fields: Any) -> str:
        conversation_id: str = self.ok("POST", API, json={"title": title, **fields})["id"]
        return conversation_id

    def send(self, cid: str, content: str, **extra: Any) -> dict[str, Any]:
        """Post a message and read the reply's SSE stream to its ``done`` event."""
        text, done = "", {}
        body = {"content": content, **extra}
        with self.http.stream("POST", f"{API}/{cid}/messages", json=body) as response:
            assert response.status_code == 200, response.read()
            event = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = orjson.loads(line[6:])
                    if event == "delta":
                        text += data["text"]
                    elif event == "done":
                        done = data
        return {"text": text, **done}

    def titles(self, **params: Any) -> list[str]:
        return [c["title"] for c in self.ok("GET", API, params=params)["data"]]


@pytest.fixture
def pages(gateway: Gateway) -> Iterator[Callable[[str], Page]]:
    made: list[Page] = []

    def make(name: str) -> Page:
        made.append(Page(gateway, name))
        return made[-1]

    yield make
    for page in made:
        page.http.close()


# ---- pinning and the sidebar ------------------------------------------------------------------


def test_pinned_conversations_head_the_sidebar_and_paging_crosses_into_the_rest(
    pages: Callable[[str], Page],
) -> None:
    page = pages("alice")
    ids = {}
    for title in ("one", "two", "three", "four", "five"):
        ids[title] = page.new(title)
        time.sleep(0.002)  # distinct update times, newest last
    before = page.ok("GET", f"{API}/{ids['two']}")["updated_at"]
    for title in ("two", "four"):
        pinned = page.ok("PATCH", f"{API}/{ids[title]}", json={"pinned": True})
        assert pinned["pinned"] is True
    assert page.ok("GET", f"{API}/{ids['two']}")["updated_at"] == before  # order unchanged

    assert page.titles() == ["five", "four", "three", "two", "one"]
    assert page.titles(pinned="true") == ["four", "two"]
    assert page.titles(pinned="false") == ["five", "three", "one"]

    seen: list[tuple[str, bool]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"pinned_first": "true", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        listing = page.ok("GET", API, params=params)
        seen += [(c["title"], c["pinned"]) for c in listing["data"]]
        cursor = listing["next_cursor"]
        if cursor is None:
            break
    assert seen == [
        ("four", True),
        ("two", True),
        ("five", False),
        ("three", False),
        ("one", False),
    ]

    page.ok("PATCH", f"{API}/{ids['four']}", json={"pinned": False})
    assert page.titles(pinned_first="true") == ["two", "five", "four", "three", "one"]


def test_a_cursor_from_the_plain_list_is_refused_by_the_pinned_first_one(
    pages: Callable[[str], Page],
) -> None:
    page = pages("alice")
    for title in ("a", "b", "c"):
        page.new(title)
    cursor = page.ok("GET", API, params={"limit": 1})["next_cursor"]
    response = page.http.get(API, params={"limit": 1, "pinned_first": "true", "cursor": cursor})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "cursor"


# ---- search in Chinese ------------------------------------------------------------------------


def test_search_finds_chinese_words_inside_a_sentence_and_a_title(
    pages: Callable[[str], Page],
) -> None:
    page, other = pages("alice"), pages("bob")
    weather = page.new("闲聊")
    page.send(weather, "今天天气很好，我们去公园散步吧")  # noqa: RUF001 - Chinese punctuation
    plans = page.new("周末计划 and hiking")
    page.send(plans, "Which trail is best in autumn? 秋天去哪里")
    theirs = other.new("别人的天气")
    other.send(theirs, "天气怎么样")

    def found(query: str) -> set[str]:
        return {c["id"] for c in page.ok("GET", API, params={"q": query})["data"]}

    assert found("天气") == {weather}  # inside a sentence, and never another user's
    assert found("公园 散步") == {weather}  # every word must occur
    assert found("计划") == {plans}  # inside a title
    assert found("计划 hiking") == {plans}  # with a word the full-text index finds
    assert found("trail 秋天") == {plans}  # or both in one of its messages
    assert found("计划 autumn") == set()  # one in the title, one in a message: as for any words
    assert found("火车") == set()
    assert found("天气 trail") == set()  # no message or title holds both
    assert found("100%") == set()  # LIKE's own characters are plain text


# ---- a conversation's own settings ------------------------------------------------------------


def test_a_conversations_model_temperature_and_max_tokens_apply_to_its_replies(
    make_gateway: Callable[..., Gateway], demo_upstream: ServerThread
) -> None:
    gateway = make_gateway(openai_base_url=demo_upstream.url + "/v1", openai_api_key="k")
    page = Page(gateway, "alice")
    try:
        models = page.ok("GET", "/api/v1/models")["data"]
        name = models[0]["id"]
        cid = page.new("settings", temperature=0.3)
        changed = page.ok(
            "PATCH", f"{API}/{cid}", json={"model": name, "temperature": 1.2, "max_tokens": 3}
        )
        assert (changed["model"], changed["temperature"], changed["max_tokens"]) == (name, 1.2, 3)

        reply = page.send(cid, "Tell me about rivers")
        sent = demo_upstream.app.requests[-1]
        assert (sent["temperature"], sent["max_tokens"]) == (1.2, 3)
        assert reply["finish_reason"] == "length"

        page.send(cid, "And lakes?", temperature=0.5, max_tokens=50)  # asked for: wins
        sent = demo_upstream.app.requests[-1]
        assert (sent["temperature"], sent["max_tokens"]) == (0.5, 50)

        cleared = page.ok("PATCH", f"{API}/{cid}", json={"temperature": None, "max_tokens": None})
        assert (cleared["temperature"], cleared["max_tokens"], cleared["model"]) == (
            None,
            None,
            name,
        )
        page.send(cid, "And seas?")
        sent = demo_upstream.app.requests[-1]
        assert "temperature" not in sent and "max_tokens" not in sent
    finally:
        page.http.close()


def test_a_model_the_user_may_not_use_is_refused_and_bad_settings_are_clear_errors(
    pages: Callable[[str], Page],
) -> None:
    page = pages("alice")
    cid = page.new("x")
    response = page.http.patch(f"{API}/{cid}", json={"model": "no-such-model"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    response = page.http.patch(f"{API}/{cid}", json={"temperature": 3})
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "temperature"
    assert page.ok("GET", f"{API}/{cid}")["model"] is None


# ---- import by upload -------------------------------------------------------------------------


def _zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
        archive.writestr("chat.html", b"<html></html>")
    return buffer.getvalue()


def test_a_chatgpt_export_uploaded_as_its_zip_is_imported_once(
    pages: Callable[[str], Page],
) -> None:
    page = pages("alice")
    upload = _zipped("export/conversations.json", EXPORT.read_bytes())
    imported = page.ok(
        "POST", f"{API}/import", content=upload, headers={"content-type": "application/zip"}
    )
    assert (imported["imported"], imported["skipped"]) == (2, 0)
    assert imported["messages"] > 0
    listed = {c["id"]: c["title"] for c in page.ok("GET", API)["data"]}
    assert {listed[i] for i in imported["ids"]} == {"Boiling eggs", "SQL 窗口函数"}
    tree = page.ok("GET", f"{API}/{imported['ids'][0]}")
    assert tree["current_path"] and len(tree["messages"]) >= len(tree["current_path"])
    assert {c["id"] for c in page.ok("GET", API, params={"q": "窗口"})["data"]} <= set(
        imported["ids"]
    )

    again = page.ok(
        "POST",
        f"{API}/import",
        content=EXPORT.read_bytes(),
        headers={"content-type": "application/json"},
    )
    assert (again["imported"], again["skipped"], again["ids"]) == (0, 2, [])


def test_an_upload_over_the_limit_or_not_an_export_is_refused_clearly(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(max_import_bytes=4000)
    page = Page(gateway, "alice")
    try:
        raw = EXPORT.read_bytes()
        assert len(raw) > 4000
        response = page.http.post(
            f"{API}/import", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
        assert "4000" in response.json()["error"]["message"]

        small_zip = _zipped("conversations.json", raw)  # compresses under the limit
        assert len(small_zip) < 4000
        response = page.http.post(
            f"{API}/import", content=small_zip, headers={"content-type": "application/zip"}
        )
        assert response.status_code == 413, response.text
        assert "conversations.json" in response.json()["error"]["message"]

        for body, kind in (
            (b'{"hello": "world"}', "application/json"),
            (b"PK\x03\x04 not really a zip", "application/zip"),
            (_zipped("notes.txt", b"hi"), "application/zip"),
        ):
            response = page.http.post(f"{API}/import", content=body, headers={"content-type": kind})
            assert response.status_code == 400, (body, response.text)
            assert response.json()["error"]["type"] == "invalid_request_error"

        response = page.http.post(
            f"{API}/import", content=raw[:100], headers={"content-type": "text/plain"}
        )
        assert response.status_code == 415  # a form's type, with the cookie: refused
        assert page.ok("GET", API)["data"] == []
    finally:
        page.http.close()


def test_an_upload_with_a_key_needs_no_cookie_rules_and_the_cookie_needs_its_own_site(
    gateway: Gateway,
) -> None:
    key = gateway.key("carol")
    response = httpx.post(
        gateway.url + f"{API}/import",
        content=EXPORT.read_bytes(),
        headers={"Authorization": f"Bearer {key}", "content-type": "application/octet-stream"},
    )
    assert response.status_code == 200 and response.json()["imported"] == 2

    page = Page(gateway, "dave")
    try:
        response = page.http.post(
            f"{API}/import",
            content=_zipped("conversations.json", EXPORT.read_bytes()),
            headers={"content-type": "application/zip", "sec-fetch-site": "cross-site"},
        )
        assert response.status_code == 403
        assert page.ok("GET", API)["data"] == []
    finally:
        page.http.close()


# ---- what will be sent ------------------------------------------------------------------------


def test_what_will_be_sent_names_the_oldest_turns_left_out_as_the_reply_leaves_them_out(
    make_gateway: Callable[..., Gateway], demo_upstream: ServerThread
) -> None:
    gateway = make_gateway(
        openai_base_url=demo_upstream.url + "/v1",
        openai_api_key="k",
        default_context_window=600,
    )
    page = Page(gateway, "alice")
    try:
        cid = page.new("long", system="Answer briefly.")
        for n in range(6):
            page.send(cid, f"Question {n}: " + "tell me more about the rivers of Europe " * 4)
        preview = page.ok("GET", f"{API}/{cid}/context")
        messages = preview["messages"]
        assert len(messages) == 12 and preview["left_out"] > 0 and preview["included"] > 0
        flags = [m["included"] for m in messages]
        assert flags == sorted(flags)  # the left-out ones are the oldest
        assert preview["budget"] == preview["context_window"] - preview["reply_reserve"]
        assert preview["tokens_sent"] == preview["system_tokens"] + sum(
            m["tokens"] for m in messages if m["included"]
        )
        assert preview["tokens_sent"] <= preview["budget"]
        tree = page.ok("GET", f"{API}/{cid}")
        assert [m["id"] for m in messages] == tree["current_path"]
        assert preview["leaf_id"] == tree["current_leaf_id"]

        page.send(cid, "ok")
        sent = demo_upstream.app.requests[-1]["messages"]
        by_id = {m["id"]: m["content"] for m in tree["messages"]}
        kept = [by_id[m["id"]] for m in messages if m["included"]]
        assert sent[0] == {"role": "system", "content": "Answer briefly."}
        assert [m["content"] for m in sent[1:-1]] == kept

        earlier = page.ok(
            "GET", f"{API}/{cid}/context", params={"leaf_id": messages[3]["id"], "max_tokens": 50}
        )
        assert [m["id"] for m in earlier["messages"]] == [m["id"] for m in messages[:4]]
        assert earlier["reply_reserve"] == 50 and earlier["left_out"] == 0
    finally:
        page.http.close()


def test_what_will_be_sent_is_only_for_the_owner_and_an_unknown_leaf_is_not_found(
    pages: Callable[[str], Page],
) -> None:
    alice, bob = pages("alice"), pages("bob")
    cid = alice.new("mine")
    alice.send(cid, "hello")
    assert bob.http.get(f"{API}/{cid}/context").status_code == 404
    response = alice.http.get(f"{API}/{cid}/context", params={"leaf_id": "nope"})
    assert response.status_code == 404 and response.json()["error"]["param"] == "leaf_id"
    empty = alice.ok("GET", f"{API}/{alice.new('empty')}/context")
    assert (empty["messages"], empty["left_out"], empty["leaf_id"]) == ([], 0, None)


# ---- models -----------------------------------------------------------------------------------


def test_the_model_picker_lists_only_the_models_the_user_may_use(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(
        models=[
            {"name": "demo", "deployments": ["demo"], "context_window": 32000},
            {"name": "private", "deployments": ["demo"], "allowed_users": ["bob"]},
        ],
        model_aliases={"fast": "demo"},
    )
    alice, bob = Page(gateway, "alice"), Page(gateway, "bob")
    try:
        listed = alice.ok("GET", "/api/v1/models")
        cards = {m["id"]: m for m in listed["data"]}
        assert "private" not in cards
        assert cards["demo"]["context_window"] == 32000 and cards["demo"]["kind"] == "chat"
        assert cards["fast"]["model"] == "demo"
        assert listed["default"] in cards
        assert "private" in {m["id"] for m in bob.ok("GET", "/api/v1/models")["data"]}
        openai_list = {m["id"] for m in alice.ok("GET", "/v1/models")["data"]}
        assert openai_list == set(cards)  # the OpenAI list takes the cookie as well
    finally:
        alice.http.close()
        bob.http.close()


# ---- the meter and the quota's refusal --------------------------------------------------------


def test_the_meter_counts_todays_questions_and_the_refusal_says_the_limit_and_the_reset(
    pages: Callable[[str], Page], gateway: Gateway
) -> None:
    page = pages("alice")
    gateway.run(gateway.services.accounts.set_quota("alice", daily_requests=2))
    start = page.ok("GET", "/api/v1/usage/today")
    assert start["requests"] == {"used": 0, "limit": 2, "remaining": 2}
    assert start["tokens"]["used"] == 0 and start["key"] is None
    assert 0 < start["resets_in"] <= 86400
    assert start["resets_at"] == pytest.approx(time.time() + start["resets_in"], abs=5)

    cid = page.new("count me")
    page.send(cid, "hello")
    after = page.ok("GET", "/api/v1/usage/today")
    assert after["requests"] == {"used": 1, "limit": 2, "remaining": 1}
    assert after["tokens"]["used"] > 0 and after["tokens"]["limit"] is None
    assert after["streams"]["used"] == 0

    page.send(cid, "again")
    refused = page.http.post(f"{API}/{cid}/messages", json={"content": "one more"})
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "insufficient_quota"
    assert "2" in error["message"] and "midnight" in error["message"]
    assert int(refused.headers["retry-after"]) > 0
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert page.ok("GET", "/api/v1/usage/today")["requests"]["remaining"] == 0


def test_a_keys_own_limits_show_beside_the_users(gateway: Gateway) -> None:
    key = gateway.key("carol")
    headers = {"Authorization": f"Bearer {key}"}
    keys = httpx.get(gateway.url + "/api/v1/keys", headers=headers).json()
    key_id = keys[0]["id"]
    gateway.run(gateway.services.accounts.set_key_quota(key_id, daily_requests=5))
    today = httpx.get(gateway.url + "/api/v1/usage/today", headers=headers).json()
    assert today["key"]["id"] == key_id
    assert today["key"]["requests"] == {"used": 0, "limit": 5, "remaining": 5}


# ---- logging in -------------------------------------------------------------------------------


def test_a_disabled_account_is_told_so_only_with_its_right_password(gateway: Gateway) -> None:
    gateway.user("alice", PASSWORD)
    gateway.run(gateway.services.accounts.update_user("alice", disabled=True))

    def attempt(password: str) -> httpx.Response:
        return httpx.post(
            gateway.url + "/api/v1/auth/login", json={"username": "alice", "password": password}
        )

    right = attempt(PASSWORD)
    assert right.status_code == 403
    assert right.json()["error"]["code"] == "account_disabled"
    assert "disabled" in right.json()["error"]["message"]
    wrong = attempt("not the password")
    assert wrong.status_code == 401 and "disabled" not in wrong.text
