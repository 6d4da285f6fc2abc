"""Resumable replies over real HTTP: a reply sent with ``"resumable": true`` outlives the
connection that asked for it, is followed again after ``Last-Event-ID`` with nothing missing or
doubled, is stopped by its owner with its partial text kept, is cancelled when nobody comes back
within the grace period, and is seen by nobody else."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from faulty_upstream import FaultyUpstream, cut_after, status
from support import Gateway
from upstream_rig import eventually
from websockets.sync.client import ClientConnection, connect

from chatgate.providers.demo import compose_reply

API = "/api/v1"
QUESTION = "what do resumable replies keep?"


@dataclass
class Event:
    kind: str
    data: dict[str, Any]
    id: int | None = None


@dataclass
class Read:
    """What one attach received, in order."""

    events: list[Event] = field(default_factory=list)

    @property
    def reply(self) -> dict[str, Any]:
        assert self.events[0].kind == "reply", self.events[0]
        return self.events[0].data

    @property
    def numbered(self) -> list[Event]:
        return [e for e in self.events if e.id is not None]

    @property
    def text(self) -> str:
        return "".join(e.data["text"] for e in self.events if e.kind == "delta")

    @property
    def last(self) -> Event:
        return self.events[-1]


def read_events(response: httpx.Response, deltas: int | None = None) -> Read:
    """Parse the stream; stop after ``deltas`` delta events (the client then goes away)."""
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse(response.iter_lines(), deltas)


def parse(lines: Iterator[str], deltas: int | None = None) -> Read:
    read = Read()
    kind, seq = "", None
    for line in lines:
        if line.startswith(":"):
            continue
        if line.startswith("id: "):
            seq = int(line[4:])
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            read.events.append(Event(kind, orjson.loads(line[6:]), seq))
            kind, seq = "", None
            if deltas is not None and sum(e.kind == "delta" for e in read.events) >= deltas:
                break
    return read


class User:
    def __init__(self, gateway: Gateway, name: str) -> None:
        self.gateway = gateway
        self.http = httpx.Client(
            base_url=gateway.url,
            headers={"Authorization": f"Bearer {gateway.key(name)}"},
            timeout=30,
        )

    def send(self, deltas: int | None = None, **body: Any) -> Read:
        """Send a resumable question to a new conversation; read ``deltas`` deltas (or all)."""
        payload = {"content": QUESTION, "resumable": True, **body}
        with self.http.stream("POST", f"{API}/conversations/new/messages", json=payload) as r:
            return read_events(r, deltas)

    def attach(self, reply_id: str, deltas: int | None = None, **headers: str) -> Read:
        with self.http.stream(
            "GET", f"{API}/replies/{reply_id}/events", headers=headers or None
        ) as response:
            return read_events(response, deltas)

    def replies(self, conversation_id: str | None = None) -> list[dict[str, Any]]:
        params = {"conversation_id": conversation_id} if conversation_id else None
        response = self.http.get(f"{API}/replies", params=params)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["data"]
        return found

    def reply(self, reply_id: str) -> dict[str, Any]:
        [found] = [r for r in self.replies() if r["reply_id"] == reply_id]
        return found

    def stored(self, conversation_id: str, message_id: str) -> dict[str, Any]:
        self.gateway.flush()
        response = self.http.get(f"{API}/conversations/{conversation_id}")
        assert response.status_code == 200, response.text
        [message] = [m for m in response.json()["messages"] if m["id"] == message_id]
        return dict(message)


@pytest.fixture
def people() -> Iterator[Callable[[Gateway, str], User]]:
    """Users of any gateway, whose clients are closed however the test ends."""
    made: list[User] = []

    def make(gateway: Gateway, name: str) -> User:
        made.append(User(gateway, name))
        return made[-1]

    yield make
    for user in made:
        user.http.close()


@pytest.fixture
def users(gateway: Gateway, people: Callable[[Gateway, str], User]) -> Callable[[str], User]:
    return lambda name: people(gateway, name)


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    """The demo model at a word every 20 ms: a reply lasts over a second, long enough to cut."""
    return make_gateway(demo_chunk_delay=0.02, conversation_titles=False)


def assert_numbered(events: list[Event], first: int = 1) -> None:
    assert [e.id for e in events] == list(range(first, first + len(events)))


def test_reload_mid_reply_gets_the_rest_with_nothing_missing_or_doubled(
    users: Callable[[str], User],
) -> None:
    alice = users("alice")
    first = alice.send(deltas=3)
    reply = first.reply
    assert reply["reply_id"].startswith("rpl_") and reply["status"] == "running"
    assert reply["reply_id"] not in (reply["conversation_id"], reply["message_id"])
    assert_numbered(first.numbered)
    seen = first.numbered[-1].id
    assert seen == 3

    rest = alice.attach(reply["reply_id"], **{"Last-Event-ID": str(seen)})
    assert rest.reply["reply_id"] == reply["reply_id"]
    assert_numbered(rest.numbered, first=4)
    assert rest.last.kind == "done" and rest.last.data["finish_reason"] == "stop"
    done = rest.last.data
    assert (done["conversation_id"], done["message_id"], done["parent_id"]) == (
        reply["conversation_id"],
        reply["message_id"],
        reply["parent_id"],
    )
    whole = first.text + rest.text
    assert whole == compose_reply(QUESTION)
    stored = alice.stored(reply["conversation_id"], reply["message_id"])
    assert stored["content"] == whole and stored["finish_reason"] == "stop"
    assert stored["parent_id"] == reply["parent_id"]

    again = alice.attach(reply["reply_id"])  # from the start, once it has ended
    assert again.reply["status"] == "ended" and again.text == whole
    assert_numbered(again.numbered)
    after = alice.http.get(f"{API}/replies/{reply['reply_id']}/events", params={"after": seen})
    ids = [line for line in after.text.splitlines() if line.startswith("id: ")]
    assert ids[0] == "id: 4" and ids[-1] == f"id: {len(again.numbered)}"


def test_a_reply_goes_on_after_the_client_leaves_and_is_stored_whole(
    users: Callable[[str], User],
) -> None:
    alice = users("alice")
    reply = alice.send(deltas=2).reply
    [listed] = alice.replies(reply["conversation_id"])
    assert listed["reply_id"] == reply["reply_id"]
    eventually(
        lambda: alice.reply(reply["reply_id"])["status"] == "ended", "the reply ended on its own"
    )
    assert alice.reply(reply["reply_id"])["finish_reason"] == "stop"
    stored = alice.stored(reply["conversation_id"], reply["message_id"])
    assert stored["content"] == compose_reply(QUESTION)
    assert stored["finish_reason"] == "stop"


def test_someone_elses_reply_is_not_found(users: Callable[[str], User]) -> None:
    alice, bob = users("alice"), users("bob")
    reply = alice.send(deltas=1).reply
    reply_id = reply["reply_id"]
    seen = bob.http.get(f"{API}/replies/{reply_id}/events")
    assert seen.status_code == 404 and seen.json()["error"]["code"] == "not_found"
    stopped = bob.http.post(f"{API}/replies/{reply_id}/cancel")
    assert stopped.status_code == 404 and stopped.json()["error"]["code"] == "not_found"
    assert bob.replies() == [] and bob.replies(reply["conversation_id"]) == []
    guessed = alice.http.get(f"{API}/replies/{reply['conversation_id']}/events")
    assert guessed.status_code == 404  # a conversation id is never a reply id
    rest = alice.attach(reply_id, **{"Last-Event-ID": "1"})
    assert rest.last.data["finish_reason"] == "stop"  # bob's cancel did nothing


def test_stop_keeps_the_partial_reply_and_ends_the_stream(users: Callable[[str], User]) -> None:
    alice = users("alice")
    payload = {"content": QUESTION, "resumable": True}
    with alice.http.stream("POST", f"{API}/conversations/new/messages", json=payload) as r:
        lines = r.iter_lines()
        head = parse(lines, deltas=3)
        reply = head.reply
        stopped = alice.http.post(f"{API}/replies/{reply['reply_id']}/cancel")
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["status"] == "ended"
        assert stopped.json()["finish_reason"] == "cancelled"
        tail = parse(lines)
    events = head.numbered + tail.numbered
    assert_numbered(events)
    assert events[-1].kind == "done" and events[-1].data["finish_reason"] == "cancelled"
    text = "".join(e.data["text"] for e in events if e.kind == "delta")
    assert text and compose_reply(QUESTION).startswith(text)
    assert text != compose_reply(QUESTION)
    stored = alice.stored(reply["conversation_id"], reply["message_id"])
    assert stored["content"] == text and stored["finish_reason"] == "cancelled"
    assert events[-1].data["message_id"] == reply["message_id"]
    again = alice.http.post(f"{API}/replies/{reply['reply_id']}/cancel")
    assert again.status_code == 200 and again.json()["last_event_id"] == len(events)


def test_a_reply_nobody_comes_back_to_is_cancelled_after_the_grace_period(
    make_gateway: Callable[..., Gateway], people: Callable[[Gateway, str], User]
) -> None:
    gateway = make_gateway(
        demo_chunk_delay=0.1, conversation_titles=False, replies={"grace_seconds": 0.3}
    )
    alice = people(gateway, "alice")
    reply = alice.send(deltas=2).reply
    eventually(
        lambda: alice.reply(reply["reply_id"])["status"] == "ended", "the reply was given up"
    )
    assert alice.reply(reply["reply_id"])["finish_reason"] == "cancelled"
    stored = alice.stored(reply["conversation_id"], reply["message_id"])
    assert stored["finish_reason"] == "cancelled"
    assert compose_reply(QUESTION).startswith(stored["content"])
    assert stored["content"] != compose_reply(QUESTION)
    rest = alice.attach(reply["reply_id"])
    assert rest.text == stored["content"] and rest.last.data["finish_reason"] == "cancelled"


def test_events_are_dropped_after_the_keep_time_and_the_stored_reply_stays(
    make_gateway: Callable[..., Gateway], people: Callable[[Gateway, str], User]
) -> None:
    gateway = make_gateway(conversation_titles=False, replies={"keep_seconds": 3})
    alice = people(gateway, "alice")
    sent = alice.send()
    reply_id = sent.reply["reply_id"]
    assert sent.last.kind == "done"
    assert alice.attach(reply_id).text == sent.text  # kept a while after the end
    eventually(lambda: alice.replies() == [], "the ended reply was dropped", timeout=15)
    gone = alice.http.get(f"{API}/replies/{reply_id}/events")
    assert gone.status_code == 404
    stored = alice.stored(sent.reply["conversation_id"], sent.reply["message_id"])
    assert stored["content"] == sent.text


def test_a_length_stop_ends_with_its_finish_reason(users: Callable[[str], User]) -> None:
    alice = users("alice")
    sent = alice.send(max_tokens=5)
    assert_numbered(sent.numbered)
    assert sent.last.kind == "done" and sent.last.data["finish_reason"] == "length"
    assert len([e for e in sent.events if e.kind == "delta"]) == 5
    again = alice.attach(sent.reply["reply_id"], **{"Last-Event-ID": "5"})
    assert [e.kind for e in again.events] == ["reply", "done"]
    assert again.reply["finish_reason"] == "length"


def test_regenerate_and_edit_can_be_resumable_too(users: Callable[[str], User]) -> None:
    alice = users("alice")
    first = alice.send()
    cid, question = first.reply["conversation_id"], first.reply["parent_id"]
    again = alice.http.post(
        f"{API}/conversations/{cid}/messages/{first.reply['message_id']}/regenerate",
        json={"resumable": True},
    )
    lines = [line for line in again.text.splitlines() if line.startswith(("id: ", "event: "))]
    assert lines[0] == "event: reply" and lines[1] == "id: 1"
    regenerated = orjson.loads(again.text.split("data: ", 2)[1].split("\n", 1)[0])
    assert regenerated["parent_id"] == question
    assert regenerated["message_id"] != first.reply["message_id"]
    edited = alice.http.post(
        f"{API}/conversations/{cid}/messages/{question}/edit",
        json={"content": "another question", "resumable": True},
    )
    placed = orjson.loads(edited.text.split("data: ", 2)[1].split("\n", 1)[0])
    assert placed["parent_id"] not in (question, None)
    assert edited.text.rstrip().endswith("}") and "event: done" in edited.text


def test_bad_resumable_requests_are_refused_plainly(users: Callable[[str], User]) -> None:
    alice = users("alice")
    whole = alice.http.post(
        f"{API}/conversations/new/messages",
        json={"content": "hi", "resumable": True, "stream": False},
    )
    assert whole.status_code == 400 and whole.json()["error"]["param"] == "resumable"
    reply_id = alice.send(deltas=1).reply["reply_id"]
    bad = alice.http.get(f"{API}/replies/{reply_id}/events", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "Last-Event-ID"
    negative = alice.http.get(f"{API}/replies/{reply_id}/events", params={"after": -1})
    assert negative.status_code == 422
    missing = alice.http.post(f"{API}/conversations/nope/messages", json={
        "content": "hi", "resumable": True})  # fmt: skip
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_without_resumable_no_reply_job_is_made(users: Callable[[str], User]) -> None:
    alice = users("alice")
    with alice.http.stream(
        "POST", f"{API}/conversations/new/messages", json={"content": QUESTION}
    ) as response:
        plain = response.read().decode()
    assert "event: reply" not in plain and "id: " not in plain and "event: done" in plain
    assert alice.replies() == []


@pytest.fixture
def faulty() -> Iterator[FaultyUpstream]:
    server = FaultyUpstream().start()
    yield server
    server.stop()


def test_an_upstream_failure_is_an_error_event_that_a_reattach_sees_too(
    make_gateway: Callable[..., Gateway],
    faulty: FaultyUpstream,
    people: Callable[[Gateway, str], User],
) -> None:
    gateway = make_gateway(
        openai_base_url=faulty.base_url,
        openai_api_key="k",
        conversation_titles=False,
        routing={"retries": 0, "breaker_failures": 100},
        models=[{"name": "solo", "deployments": ["openai"], "upstream_name": "demo"}],
    )
    alice = people(gateway, "alice")
    faulty.enqueue(cut_after(3))
    cut = alice.send(model="solo")
    assert cut.last.kind == "error" and cut.last.id is not None
    assert cut.last.data["error"]["code"].startswith("upstream")
    assert_numbered(cut.numbered)
    again = alice.attach(cut.reply["reply_id"], **{"Last-Event-ID": str(cut.last.id - 1)})
    assert [e.kind for e in again.events] == ["reply", "error"]
    assert again.reply["finish_reason"] == "error"
    assert (
        again.last.id,
        again.last.data["error"]["code"],
        again.last.data["error"]["message"],
    ) == (
        cut.last.id,
        cut.last.data["error"]["code"],
        cut.last.data["error"]["message"],
    )

    faulty.enqueue(status(500))
    early = alice.send(model="solo")  # before the first token: still an event of the reply
    assert [e.kind for e in early.events] == ["reply", "error"] and early.last.id == 1
    conversation = alice.http.get(f"{API}/conversations/{early.reply['conversation_id']}")
    assert [m["id"] for m in conversation.json()["messages"]] == [early.reply["parent_id"]]


def ws_frames(ws: ClientConnection, rid: str, until: Callable[[dict[str, Any]], bool]) -> list[Any]:
    frames: list[dict[str, Any]] = []
    while not frames or not until(frames[-1]):
        frame = orjson.loads(ws.recv(timeout=15))
        if frame["id"] == rid:
            frames.append(frame)
    return frames


def test_a_websocket_client_resumes_a_reply_on_a_new_socket(users: Callable[[str], User]) -> None:
    alice = users("alice")
    key = alice.http.headers["Authorization"].removeprefix("Bearer ")
    url = alice.gateway.url.replace("http", "ws", 1) + "/api/v1/ws"
    ask = {"type": "chat", "id": "q1", "model": "demo", "resumable": True}
    ask |= {"conversation_id": "new", "messages": [{"role": "user", "content": QUESTION}]}
    with connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        ws.send(orjson.dumps(ask).decode())
        first = ws_frames(ws, "q1", lambda f: f.get("seq") == 3)
    reply = first[0]
    assert reply["type"] == "reply" and reply["reply_id"].startswith("rpl_")
    assert [f["seq"] for f in first[1:]] == [1, 2, 3]
    resume = {"type": "resume", "id": "again", "reply_id": reply["reply_id"], "after": 3}
    with connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        ws.send(orjson.dumps(resume).decode())
        rest = ws_frames(ws, "again", lambda f: f["type"] in ("done", "error"))
    assert rest[0]["type"] == "reply" and rest[0]["reply_id"] == reply["reply_id"]
    assert [f["seq"] for f in rest[1:]] == list(range(4, 4 + len(rest) - 1))
    assert rest[-1]["type"] == "done" and rest[-1]["finish_reason"] == "stop"
    text = "".join(f["text"] for f in first[1:] + rest[1:-1])
    assert text == compose_reply(QUESTION)
    stored = alice.stored(reply["conversation_id"], reply["message_id"])
    assert stored["content"] == text


def test_a_websocket_cancel_stops_a_resumable_reply_and_keeps_it(
    users: Callable[[str], User],
) -> None:
    alice, bob = users("alice"), users("bob")
    key = alice.http.headers["Authorization"].removeprefix("Bearer ")
    url = alice.gateway.url.replace("http", "ws", 1) + "/api/v1/ws"
    ask = {"type": "chat", "id": 7, "model": "demo", "resumable": True}
    ask |= {"conversation_id": "new", "messages": [{"role": "user", "content": QUESTION}]}
    with connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        ws.send(orjson.dumps(ask).decode())
        head = ws_frames(ws, 7, lambda f: f.get("seq") == 2)
        reply = head[0]
        bob_key = bob.http.headers["Authorization"].removeprefix("Bearer ")
        with connect(url, additional_headers={"Authorization": f"Bearer {bob_key}"}) as other:
            other.send(json.dumps({"type": "resume", "id": 1, "reply_id": reply["reply_id"]}))
            refused = orjson.loads(other.recv(timeout=15))
        assert refused["type"] == "error" and refused["code"] == "not_found"
        ws.send(orjson.dumps({"type": "cancel", "id": 7}).decode())
        tail = ws_frames(ws, 7, lambda f: f["type"] in ("done", "error"))
    assert tail[-1]["type"] == "done" and tail[-1]["finish_reason"] == "cancelled"
    text = "".join(f["text"] for f in head[1:] + tail[:-1])
    stored = alice.stored(reply["conversation_id"], reply["message_id"])
    assert stored["content"] == text and stored["finish_reason"] == "cancelled"
