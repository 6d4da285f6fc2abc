"""Two ``chatgate serve`` processes on two ports, sharing a PostgreSQL database of their own and
Redis, behave as one service: limits are exact across them, a conversation and a key are the same
on both (a conversation asked of each in turn is one path, however fast the turns come), and a
reply started on one is followed on the other, even when the first one dies.

Skipped, with the reason, when no PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis
from serve_process import REDIS, Serve, chatgate, postgres_database, redis_prefix, serve_env
from support import remember
from websockets.sync.client import ClientConnection, connect

NO_GRPC = ("--grpc-port", "0")
API = "/api/v1"
QUESTION = "what happens to a reply when the server that makes it goes away?"

pytestmark = pytest.mark.timeout(600)  # several processes start, on a busy machine too


# ---- the shared PostgreSQL database and Redis ------------------------------------------------


@dataclass
class Shared:
    """What every instance shares, and the environment that says so."""

    tmp: Path
    database_url: str
    redis_prefix: str
    secret_key: str = field(default_factory=lambda: remember(secrets.token_urlsafe(24)))

    def env(self, name: str, **settings: str) -> dict[str, str]:
        data = self.tmp / name
        data.mkdir(exist_ok=True)
        values = {
            "database_url": self.database_url,
            "redis_url": REDIS,
            "redis_prefix": self.redis_prefix,
            "secret_key": self.secret_key,
            "demo_chunk_delay": "0.05",
            "conversation_titles": "false",
            "replies__lease_seconds": "1",
        }
        return serve_env(data, **(values | settings))

    def chatgate(self, *args: str) -> str:
        return chatgate(self.env("admin"), *args)

    def user_key(self, name: str, daily_requests: int = 10) -> str:
        """A new user with a key of their own, allowed ``daily_requests`` a day."""
        self.chatgate("users", "create", name)
        self.chatgate("users", "set-quota", name, "--daily-requests", str(daily_requests))
        return remember(self.chatgate("keys", "create", "--user", name).strip())


@contextlib.contextmanager
def shared_service(tmp: Path) -> Iterator[Shared]:
    """A PostgreSQL database of its own, migrated, and a Redis prefix of its own, emptied after."""
    prefix = redis_prefix()
    with postgres_database() as database_url:
        try:
            found = Shared(tmp, database_url, prefix)
            found.chatgate("db", "upgrade")
            yield found
        finally:
            client = redis.Redis.from_url(REDIS)
            keys = list(client.scan_iter(match=prefix + "*"))
            if keys:
                client.delete(*keys)
            client.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    with shared_service(tmp_path_factory.mktemp("two")) as found:
        yield found


@pytest.fixture(scope="module")
def pair(shared: Shared) -> Iterator[tuple[Serve, Serve]]:
    servers = [
        Serve(shared.env(name), shared.tmp / f"{name}.log", *NO_GRPC) for name in ("one", "two")
    ]
    try:
        for server in servers:
            server.wait_ready()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


# ---- a client's view of the native API -------------------------------------------------------


@dataclass
class Event:
    kind: str
    data: dict[str, Any]
    id: int | None = None


def _events(response: httpx.Response, deltas: int | None = None) -> list[Event]:
    """The stream's events; after ``deltas`` deltas the client stops reading (and goes away)."""
    assert response.status_code == 200, response.read()
    events: list[Event] = []
    kind, seq = "", None
    for line in response.iter_lines():
        if line.startswith("id: "):
            seq = int(line[4:])
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            events.append(Event(kind, orjson.loads(line[6:]), seq))
            kind, seq = "", None
            if deltas is not None and sum(e.kind == "delta" for e in events) >= deltas:
                break
    return events


def _text(events: list[Event]) -> str:
    return "".join(e.data["text"] for e in events if e.kind == "delta")


def _client(server: Serve, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _ask(client: httpx.Client, conversation: str, deltas: int | None = None) -> list[Event]:
    body = {"content": QUESTION, "resumable": True}
    with client.stream("POST", f"{API}/conversations/{conversation}/messages", json=body) as r:
        return _events(r, deltas)


def _attach(client: httpx.Client, reply_id: str, last_event_id: int) -> list[Event]:
    headers = {"Last-Event-ID": str(last_event_id)}
    with client.stream("GET", f"{API}/replies/{reply_id}/events", headers=headers) as r:
        return _events(r)


def _conversation(client: httpx.Client, conversation_id: str) -> dict[str, Any]:
    response = client.get(f"{API}/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def _message(client: httpx.Client, conversation_id: str, message_id: str) -> dict[str, Any]:
    messages = _conversation(client, conversation_id)["messages"]
    [message] = [m for m in messages if m["id"] == message_id]
    return dict(message)


# ---- the stories -----------------------------------------------------------------------------


def test_forty_requests_on_two_instances_against_ten_remaining_give_exactly_ten(
    shared: Shared, pair: tuple[Serve, Serve]
) -> None:
    key = shared.user_key("carol", daily_requests=12)
    ask = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    for server in pair:  # one request through each: ten remain
        done = httpx.post(
            server.url + "/v1/chat/completions",
            json=ask,
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert done.status_code == 200, done.text

    async def forty() -> list[BaseException | Any]:
        clients = [
            openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
            for server in pair
        ]
        release = asyncio.Event()

        async def one(n: int) -> Any:
            await release.wait()
            return await clients[n % 2].chat.completions.create(
                model="demo", messages=[{"role": "user", "content": f"question {n}"}]
            )

        tasks = [asyncio.create_task(one(n)) for n in range(40)]
        await asyncio.sleep(0.1)
        release.set()
        try:
            return await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for client in clients:
                await client.close()

    outcomes = asyncio.run(forty())
    answered = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
    assert len(answered) == 10
    assert len(refused) == 30, [o for o in outcomes if isinstance(o, BaseException)][:3]
    assert {o.choices[0].finish_reason for o in answered} == {"stop"}


def test_a_conversation_written_through_one_instance_is_continued_through_the_other(
    shared: Shared, pair: tuple[Serve, Serve]
) -> None:
    one, other = pair
    key = shared.user_key("dave")
    with _client(one, key) as first, _client(other, key) as second:
        started = _ask(first, "new")
        reply = started[0].data
        assert started[-1].kind == "done"
        conversation_id = reply["conversation_id"]

        continued = _ask(second, conversation_id)
        assert continued[-1].kind == "done"
        again = continued[0].data
        assert again["conversation_id"] == conversation_id
        # The new question follows the reply written through the first instance.
        on_first = _conversation(first, conversation_id)
        question = _message(first, conversation_id, again["parent_id"])
        assert question["parent_id"] == reply["message_id"]
        assert _message(first, conversation_id, again["message_id"])["content"] == _text(continued)
        assert on_first["current_leaf_id"] == again["message_id"]
        assert len(on_first["messages"]) == 4


def test_a_key_revoked_on_one_instance_is_refused_by_the_other_within_a_second(
    shared: Shared, pair: tuple[Serve, Serve]
) -> None:
    one, other = pair
    key = shared.user_key("erin")
    headers = {"Authorization": f"Bearer {key}"}
    for server in pair:  # both have the key in their caches now
        assert httpx.get(server.url + "/v1/models", headers=headers).status_code == 200
    [listed] = httpx.get(one.url + f"{API}/keys", headers=headers).json()

    revoked = httpx.delete(one.url + f"{API}/keys/{listed['id']}", headers=headers)
    assert revoked.status_code in (200, 204), revoked.text
    deadline = time.monotonic() + 1.0
    status = 200
    while status == 200 and time.monotonic() < deadline:
        status = httpx.get(other.url + "/v1/models", headers=headers).status_code
    assert status == 401


def test_a_stream_cut_on_one_instance_is_resumed_on_the_other_with_last_event_id(
    shared: Shared, pair: tuple[Serve, Serve]
) -> None:
    one, other = pair
    key = shared.user_key("frank")
    with _client(one, key) as first, _client(other, key) as second:
        head = _ask(first, "new", deltas=4)  # then the connection is closed
        reply = head[0].data
        assert reply["reply_id"].startswith("rpl_")
        assert reply["reply_id"] not in (reply["conversation_id"], reply["message_id"])
        seen = head[-1].id
        assert seen is not None

        rest = _attach(second, reply["reply_id"], seen)
        assert rest[0].kind == "reply" and rest[0].data["reply_id"] == reply["reply_id"]
        numbered = [e.id for e in head + rest if e.id is not None]
        assert numbered == list(range(1, len(numbered) + 1))  # nothing missing or doubled
        assert rest[-1].kind == "done" and rest[-1].data["finish_reason"] == "stop"
        text = _text(head) + _text(rest)
        for client in (first, second):
            stored = _message(client, reply["conversation_id"], reply["message_id"])
            assert stored["content"] == text

        # Only the owner attaches, on either instance.
        intruder = shared.user_key("grace")
        with _client(other, intruder) as stranger:
            refused = stranger.get(f"{API}/replies/{reply['reply_id']}/events")
            assert refused.status_code == 404


def test_a_reply_made_on_one_instance_is_stopped_through_the_other_and_kept(
    shared: Shared, pair: tuple[Serve, Serve]
) -> None:
    one, other = pair
    key = shared.user_key("judy")
    with _client(one, key) as first, _client(other, key) as second:
        head = _ask(first, "new", deltas=3)
        reply = head[0].data
        stopped = second.post(f"{API}/replies/{reply['reply_id']}/cancel")
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["status"] == "ended"
        assert stopped.json()["finish_reason"] == "cancelled"
        rest = _attach(second, reply["reply_id"], head[-1].id or 0)
        assert rest[-1].kind == "done" and rest[-1].data["finish_reason"] == "cancelled"
        text = _text(head) + _text(rest)
        assert len(text) < len(reply_text_of(QUESTION))
        stored = _message(second, reply["conversation_id"], reply["message_id"])
        assert stored["content"] == text and stored["finish_reason"] == "cancelled"


def _frames(ws: ClientConnection, rid: str, until: str | int) -> list[dict[str, Any]]:
    """The socket's frames for request ``rid``, up to the one with seq ``until`` or the end."""
    frames: list[dict[str, Any]] = []
    while not frames or not (
        frames[-1].get("seq") == until or frames[-1]["type"] in ("done", "error")
    ):
        frame = orjson.loads(ws.recv(timeout=30))
        if frame["id"] == rid:
            frames.append(frame)
    return frames


def test_a_websocket_reply_is_resumed_on_the_other_instance(
    shared: Shared, pair: tuple[Serve, Serve]
) -> None:
    one, other = pair
    key = shared.user_key("ivan")
    auth = {"Authorization": f"Bearer {key}"}
    ask = {"type": "chat", "id": "q1", "model": "demo", "resumable": True}
    ask |= {"conversation_id": "new", "messages": [{"role": "user", "content": QUESTION}]}
    with connect(one.url.replace("http", "ws", 1) + f"{API}/ws", additional_headers=auth) as ws:
        ws.send(orjson.dumps(ask).decode())
        head = _frames(ws, "q1", until=3)
    reply = head[0]
    assert [f["seq"] for f in head[1:]] == [1, 2, 3]
    resume = {"type": "resume", "id": "again", "reply_id": reply["reply_id"], "after": 3}
    with connect(other.url.replace("http", "ws", 1) + f"{API}/ws", additional_headers=auth) as ws:
        ws.send(orjson.dumps(resume).decode())
        rest = _frames(ws, "again", until="end")
    assert rest[0]["type"] == "reply" and rest[0]["reply_id"] == reply["reply_id"]
    assert [f["seq"] for f in rest[1:]] == list(range(4, 4 + len(rest) - 1))
    assert rest[-1]["type"] == "done" and rest[-1]["finish_reason"] == "stop"
    text = "".join(f["text"] for f in head[1:] + rest[1:-1])
    with _client(other, key) as client:
        assert _message(client, reply["conversation_id"], reply["message_id"])["content"] == text


def test_a_reply_whose_instance_is_killed_ends_with_an_error_on_the_other_and_is_kept(
    shared: Shared, pair: tuple[Serve, Serve]
) -> None:
    _, other = pair
    victim = Serve(
        shared.env("victim", demo_chunk_delay="0.2"), shared.tmp / "victim.log", *NO_GRPC
    )
    try:
        victim.wait_ready()
        key = shared.user_key("heidi")
        with _client(victim, key) as first, _client(other, key) as second:
            head = _ask(first, "new", deltas=3)
            reply = head[0].data
            conversation_id = reply["conversation_id"]
            # The question is written behind, within the writer's interval: wait until it is.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ids = [m["id"] for m in _conversation(second, conversation_id)["messages"]]
                if reply["parent_id"] in ids:
                    break
                time.sleep(0.1)
            victim.kill()

            rest = _attach(second, reply["reply_id"], head[-1].id or 0)
            assert rest[-1].kind == "error"
            assert rest[-1].data["error"]["code"] == "producer_lost"
            numbered = [e.id for e in head + rest if e.id is not None]
            assert numbered == list(range(1, len(numbered) + 1))
            text = _text(head) + _text(rest)
            assert text and len(text) < len(reply_text_of(QUESTION))

            stored = _message(second, conversation_id, reply["message_id"])
            assert stored["content"] == text
            assert stored["finish_reason"] == "error"
            assert _conversation(second, conversation_id)["current_leaf_id"] == reply["message_id"]
            [listed] = [
                r for r in second.get(f"{API}/replies").json()["data"]
                if r["reply_id"] == reply["reply_id"]
            ]  # fmt: skip
            assert listed["status"] == "ended" and listed["finish_reason"] == "error"
            # A second follower sees the same end, and nothing is stored twice.
            again = _attach(second, reply["reply_id"], 0)
            assert _text(again) == text and again[-1].data["error"]["code"] == "producer_lost"
            messages = _conversation(second, conversation_id)["messages"]
            assert [m["id"] for m in messages].count(reply["message_id"]) == 1
    finally:
        victim.stop()


# ---- one conversation, asked on both instances in turn ----------------------------------------


def _say(client: httpx.Client, conversation: str, text: str, **extra: Any) -> dict[str, Any]:
    """One turn through the native API, streamed or whole (``stream``); the done event's ids
    (conversation, reply, question) as soon as the reply is over."""
    body = {"content": text, **extra}
    path = f"{API}/conversations/{conversation}/messages"
    if body.get("stream", True):
        with client.stream("POST", path, json=body) as r:
            events = _events(r)
        assert events[-1].kind == "done", events[-1]
        return events[-1].data
    whole = client.post(path, json=body)
    assert whole.status_code == 200, whole.text
    return dict(whole.json())


def _straight_path(client: httpx.Client, conversation_id: str, questions: list[str]) -> None:
    """The stored conversation is one path with no branch: each question follows the reply
    before it, each reply its question, in the order asked, and the last reply is current."""
    found = _conversation(client, conversation_id)
    messages = {m["id"]: m for m in found["messages"]}
    assert len(messages) == 2 * len(questions)
    path: list[dict[str, Any]] = []
    current: str | None = found["current_leaf_id"]
    while current is not None:
        path.append(messages[current])
        current = messages[current]["parent_id"]
    path.reverse()
    assert len(path) == len(messages)  # every stored message is on the current path
    assert [m["role"] for m in path] == ["user", "assistant"] * len(questions)
    assert [m["content"] for m in path[::2]] == questions
    assert found["current_path"] == [m["id"] for m in path]


def test_a_conversation_asked_on_each_instance_in_turn_stays_one_straight_path(
    shared: Shared, pair: tuple[Serve, Serve]
) -> None:
    key = shared.user_key("olivia", daily_requests=50)
    with _client(pair[0], key) as first, _client(pair[1], key) as second:
        clients = (first, second)
        conversation, previous = "new", None
        questions = [f"question {n}: what comes next?" for n in range(10)]
        for n, question in enumerate(questions):
            # A, B, A, B...: each instance has the conversation cached from two turns before.
            done = _say(clients[n % 2], conversation, question, stream=n % 4 < 2)
            conversation = done["conversation_id"]
            asked = _message(clients[(n + 1) % 2], conversation, done["parent_id"])
            assert asked["content"] == question
            assert asked["parent_id"] == previous  # the reply just before, made on the other
            previous = done["message_id"]
        for client in clients:
            _straight_path(client, conversation, questions)


def test_a_conversation_continued_through_the_openai_route_on_each_instance_in_turn(
    shared: Shared, pair: tuple[Serve, Serve]
) -> None:
    key = shared.user_key("peggy", daily_requests=50)
    apis = [
        openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) for server in pair
    ]
    conversation, previous = "new", None
    questions = [f"question {n}: and then?" for n in range(8)]
    for n, question in enumerate(questions):
        ask: dict[str, Any] = {
            "model": "demo",
            "messages": [{"role": "user", "content": question}],
            "extra_body": {"conversation_id": conversation},
        }
        api = apis[n % 2]
        if n % 4 < 2:
            ids = api.chat.completions.create(**ask).model_extra or {}
        else:
            chunks = list(api.chat.completions.create(stream=True, **ask))
            [ids] = [c.model_extra for c in chunks if "conversation_id" in (c.model_extra or {})]
        conversation = ids["conversation_id"]
        with _client(pair[(n + 1) % 2], key) as other:
            assert _message(other, conversation, ids["parent_id"])["parent_id"] == previous
        previous = ids["message_id"]
    for api in apis:
        api.close()
    for server in pair:
        with _client(server, key) as client:
            _straight_path(client, conversation, questions)


def test_messages_taken_out_through_one_instance_are_gone_for_the_other_at_once(
    shared: Shared, pair: tuple[Serve, Serve]
) -> None:
    """The other instance counts as many messages as it holds (two taken out, two added), and
    still sees that they are not the same ones."""
    one, other = pair
    key = shared.user_key("quentin", daily_requests=50)
    with _client(one, key) as first, _client(other, key) as second:
        root = _say(first, "new", "the first question")
        conversation = root["conversation_id"]
        side = _say(first, conversation, "a side question", parent_id=root["message_id"])
        kept = _say(first, conversation, "another one", parent_id=root["message_id"])
        context = first.get(f"{API}/conversations/{conversation}/context").json()
        assert len(context["messages"]) == 4  # all six are in the first instance's cache now

        for message_id in (side["parent_id"], side["message_id"]):
            gone = second.delete(f"/v1/conversations/{conversation}/items/msg_{message_id}")
            assert gone.status_code == 200, gone.text
        added = _say(second, conversation, "a question on the second")
        assert _message(second, conversation, added["parent_id"])["parent_id"] == kept["message_id"]

        refused = first.post(
            f"{API}/conversations/{conversation}/messages",
            json={"content": "after a message taken out", "parent_id": side["message_id"]},
        )
        assert refused.status_code == 404, refused.text
        context = first.get(f"{API}/conversations/{conversation}/context").json()
        expected = [root["parent_id"], root["message_id"], kept["parent_id"], kept["message_id"]]
        expected += [added["parent_id"], added["message_id"]]
        assert [m["id"] for m in context["messages"]] == expected
        last = _say(first, conversation, "and on the first again")
        question = _message(second, conversation, last["parent_id"])
        assert question["parent_id"] == added["message_id"]

        assert second.delete(f"{API}/conversations/{conversation}").status_code == 204
        assert first.get(f"{API}/conversations/{conversation}").status_code == 404
        again = first.post(f"{API}/conversations/{conversation}/messages", json={"content": "?"})
        assert again.status_code == 404


def reply_text_of(question: str) -> str:
    from chatgate.providers.demo import compose_reply

    return compose_reply(question)
