"""A reply whose instance dies while nobody follows it is still kept: every live instance looks
once a lease period for replies whose producer's lease has lapsed, and the one whose claim wins
stores what the reply had said and ends its stream with a ``producer_lost`` error, so that a
client that comes back later sees how it ended. A reply whose producer lives is left to finish,
however long nobody follows it.

Real ``chatgate serve`` processes on a PostgreSQL database of their own and Redis; the dying one
asks a scripted upstream that stops in the middle of its reply, so that what its client received
is all the reply ever said. Skipped, with the reason, when no PostgreSQL (127.0.0.1:5432) or
Redis (127.0.0.1:6379) answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import redis
from faulty_upstream import FaultyUpstream, stall_after
from serve_process import REDIS, Serve
from test_two_instances import (
    API,
    NO_GRPC,
    QUESTION,
    Event,
    Shared,
    _ask,
    _attach,
    _client,
    _conversation,
    _message,
    _text,
    reply_text_of,
    shared_service,
)

from chatgate.providers.demo import plan

pytestmark = pytest.mark.timeout(600)  # several processes start, on a busy machine too

LEASE = "2"
"""Seconds: short, so that a lapsed lease is found soon, and twice what the other tests use, so
that a busy machine does not make a live producer look gone."""
SAID = 5
"""Pieces of its reply the upstream sends the dying instance before it stops saying anything."""
TAKEN_OVER = "lost its producer: kept as it stood"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    with shared_service(tmp_path_factory.mktemp("sweep")) as found:
        yield found


@pytest.fixture(scope="module")
def survivors(shared: Shared) -> Iterator[tuple[Serve, Serve]]:
    """Two instances that live through the test, both sweeping."""
    servers = [
        Serve(
            shared.env(name, replies__lease_seconds=LEASE, demo_chunk_delay="0.1"),
            shared.tmp / f"{name}.log",
            *NO_GRPC,
        )
        for name in ("one", "two")
    ]
    try:
        for server in servers:
            server.wait_ready()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    server = FaultyUpstream().start()
    yield server
    server.stop()


def _victim(shared: Shared, upstream: FaultyUpstream) -> Serve:
    """An instance whose model is ``upstream``, to be killed in the middle of a reply. Its
    writer would write what it queued only after an hour: the question is in the database
    because a reply others may take over is not started before it is."""
    env = shared.env(
        "victim",
        replies__lease_seconds=LEASE,
        usage_flush_seconds="3600",
        openai_base_url=upstream.base_url,
        openai_api_key="sk-upstream",
    )
    return Serve(env, shared.tmp / "victim.log", *NO_GRPC)


def _ask_until_said(client: httpx.Client, said: str) -> list[Event]:
    """Ask for a resumable reply and read it until ``said`` has come (the upstream may send its
    pieces in fewer deltas), then leave."""
    body = {"content": QUESTION, "resumable": True}
    events: list[Event] = []
    kind, seq = "", None
    with client.stream("POST", f"{API}/conversations/new/messages", json=body) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("id: "):
                seq = int(line[4:])
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append(Event(kind, orjson.loads(line[6:]), seq))
                kind, seq = "", None
                if len(_text(events)) >= len(said):
                    return events
    raise AssertionError(f"the reply ended before it said {said!r}: {events}")


def _until_stored(
    server: Serve, key: str, conversation_id: str, message_id: str, within: float
) -> dict[str, Any]:
    """The message once it is in the conversation (read through ``server``)."""
    deadline = time.monotonic() + within
    with _client(server, key) as client:
        while True:
            messages = _conversation(client, conversation_id)["messages"]
            found = [m for m in messages if m["id"] == message_id]
            if found:
                return dict(found[0])
            assert time.monotonic() < deadline, f"{message_id} was never stored: {messages}"
            time.sleep(0.2)


def _took_over(servers: tuple[Serve, ...], reply_id: str) -> list[str]:
    return [
        line
        for server in servers
        for line in server.lines()
        if TAKEN_OVER in line and reply_id in line
    ]


def test_a_reply_whose_instance_is_killed_with_nobody_following_is_stored_once_by_the_others(
    shared: Shared, survivors: tuple[Serve, Serve], upstream: FaultyUpstream
) -> None:
    one, two = survivors
    upstream.enqueue(stall_after(1 + SAID))  # the role, then SAID pieces, then silence
    pieces = plan({"messages": [{"role": "user", "content": QUESTION}]}).pieces
    victim = _victim(shared, upstream)
    try:
        victim.wait_ready()
        key = shared.user_key("mallory")
        with _client(victim, key) as asking:
            # All it will ever say; then the client leaves.
            head = _ask_until_said(asking, "".join(pieces[:SAID]))
        reply = head[0].data
        conversation_id, message_id = reply["conversation_id"], reply["message_id"]
        said = _text(head)
        assert said == "".join(pieces[:SAID])
        _until_stored(one, key, conversation_id, reply["parent_id"], within=30)  # the question
        victim.kill()

        # Nobody attaches: the instances that live find the reply and store what it had said.
        stored = _until_stored(two, key, conversation_id, message_id, within=60)
        assert stored["content"] == said
        assert stored["finish_reason"] == "error"
        with _client(one, key) as client:
            conversation = _conversation(client, conversation_id)
            assert conversation["current_leaf_id"] == message_id
            assert [m["id"] for m in conversation["messages"]].count(message_id) == 1
            assert _message(client, conversation_id, message_id)["content"] == said
        assert len(_took_over(survivors, reply["reply_id"])) == 1, one.lines() + two.lines()

        # A client that comes back later, through either, sees how it ended.
        with _client(one, key) as later:
            rest = _attach(later, reply["reply_id"], head[-1].id or 0)
            assert [e.kind for e in rest] == ["reply", "error"]
            assert rest[-1].data["error"]["code"] == "producer_lost"
            assert rest[-1].id == (head[-1].id or 0) + 1
            listed = later.get(f"{API}/replies", params={"conversation_id": conversation_id})
            [ended] = listed.json()["data"]
            assert ended["status"] == "ended" and ended["finish_reason"] == "error"
        with _client(two, key) as later:
            again = _attach(later, reply["reply_id"], 0)
            assert _text(again) == said
            assert again[-1].data["error"]["code"] == "producer_lost"
        assert len(_took_over(survivors, reply["reply_id"])) == 1
        running = redis.Redis.from_url(REDIS)
        try:
            assert (
                running.zscore(shared.redis_prefix + "replies:running", reply["reply_id"]) is None
            )
        finally:
            running.close()
    finally:
        victim.stop()


def test_a_reply_nobody_follows_on_a_live_instance_is_left_to_finish(
    shared: Shared, survivors: tuple[Serve, Serve]
) -> None:
    one, two = survivors
    key = shared.user_key("niaj")
    with _client(one, key) as asking:
        head = _ask(asking, "new", deltas=2)  # the client leaves; the reply goes on for seconds
    reply = head[0].data
    # It runs for several lease periods, swept by both instances all along.
    stored = _until_stored(two, key, reply["conversation_id"], reply["message_id"], within=120)
    assert stored["content"] == reply_text_of(QUESTION)
    assert stored["finish_reason"] == "stop"
    assert _took_over((one, two), reply["reply_id"]) == []
    with _client(two, key) as later:
        rest = _attach(later, reply["reply_id"], 0)
    assert rest[-1].kind == "done" and rest[-1].data["finish_reason"] == "stop"
    assert _text(rest) == reply_text_of(QUESTION)
