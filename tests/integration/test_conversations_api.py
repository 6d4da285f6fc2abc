"""The native conversations API over real HTTP: the tree, branching, ownership, search and
export, as a client of ``/api/v1/conversations`` sees them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from support import Gateway

from chatgate.providers.demo import compose_reply

API = "/api/v1/conversations"


class Client:
    """One user's HTTP client for the native API."""

    def __init__(self, gateway: Gateway, name: str, *, admin: bool = False) -> None:
        if admin:
            gateway.user(name, admin=True)
        self.gateway = gateway
        self.key = gateway.key(name)
        self.http = httpx.Client(
            base_url=gateway.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )

    def send(self, cid: str, content: str, **extra: Any) -> dict[str, Any]:
        """Post a message, read the SSE stream, and return the text and the done event."""
        return self.stream(f"{API}/{cid}/messages", {"content": content, **extra})

    def stream(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        text, done = "", {}
        with self.http.stream("POST", path, json=body) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
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
                    else:
                        raise AssertionError(f"unexpected event {event}: {data}")
        return {"text": text, **done}

    def get(self, cid: str) -> dict[str, Any]:
        response = self.http.get(f"{API}/{cid}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


@pytest.fixture
def users(gateway: Gateway) -> Iterator[Callable[..., Client]]:
    """Makes users with their own HTTP client; closes the clients afterwards."""
    made: list[Client] = []

    def make(name: str, *, admin: bool = False) -> Client:
        made.append(Client(gateway, name, admin=admin))
        return made[-1]

    yield make
    for client in made:
        client.http.close()


def contents(conversation: dict[str, Any], ids: list[str]) -> list[str]:
    by_id = {m["id"]: m["content"] for m in conversation["messages"]}
    return [by_id[i] for i in ids]


def test_a_conversation_grows_as_a_tree_with_a_current_path(
    gateway: Gateway, users: Callable[..., Client]
) -> None:
    alice = users("alice")
    first = alice.send("new", "What is a tree?")
    cid = first["conversation_id"]
    assert first["text"] == compose_reply("What is a tree?")
    second = alice.send(cid, "And a forest?")
    tree = alice.get(cid)
    assert len(tree["messages"]) == 4
    assert contents(tree, tree["current_path"]) == [
        "What is a tree?",
        first["text"],
        "And a forest?",
        second["text"],
    ]
    assert tree["current_leaf_id"] == second["message_id"]
    parents = {m["id"]: m["parent_id"] for m in tree["messages"]}
    assert parents[second["message_id"]] == second["parent_id"]
    assert parents[second["parent_id"]] == first["message_id"]


def test_regenerate_adds_a_sibling_reply_and_edit_a_sibling_question(
    gateway: Gateway, users: Callable[..., Client]
) -> None:
    alice = users("alice")
    first = alice.send("new", "Name a colour.")
    cid = first["conversation_id"]
    again = alice.stream(f"{API}/{cid}/messages/{first['message_id']}/regenerate", {})
    assert again["parent_id"] == first["parent_id"]
    assert again["message_id"] != first["message_id"]
    edited = alice.stream(
        f"{API}/{cid}/messages/{first['parent_id']}/edit", {"content": "Name a shape."}
    )
    tree = alice.get(cid)
    by_id = {m["id"]: m for m in tree["messages"]}
    question = by_id[edited["parent_id"]]
    assert question["content"] == "Name a shape." and question["parent_id"] is None
    roots = [m for m in tree["messages"] if m["parent_id"] is None]
    assert sorted(m["content"] for m in roots) == ["Name a colour.", "Name a shape."]
    replies = [m for m in tree["messages"] if m["parent_id"] == first["parent_id"]]
    assert len(replies) == 2
    assert tree["current_path"] == [edited["parent_id"], edited["message_id"]]


def test_the_current_leaf_can_be_moved_back_to_another_branch(
    gateway: Gateway, users: Callable[..., Client]
) -> None:
    alice = users("alice")
    first = alice.send("new", "Start here.")
    cid = first["conversation_id"]
    alice.send(cid, "Go on.")
    response = alice.http.patch(f"{API}/{cid}", json={"current_leaf_id": first["message_id"]})
    assert response.status_code == 200
    assert response.json()["current_leaf_id"] == first["message_id"]
    third = alice.send(cid, "A different way.")
    assert alice.get(cid)["current_path"] == [
        first["parent_id"],
        first["message_id"],
        third["parent_id"],
        third["message_id"],
    ]


def test_rename_and_delete(gateway: Gateway, users: Callable[..., Client]) -> None:
    alice = users("alice")
    cid = alice.send("new", "Hello.")["conversation_id"]
    renamed = alice.http.patch(f"{API}/{cid}", json={"title": "Greetings"})
    assert renamed.json()["title"] == "Greetings"
    assert alice.get(cid)["title"] == "Greetings"
    assert alice.http.delete(f"{API}/{cid}").status_code == 204
    assert alice.http.get(f"{API}/{cid}").status_code == 404
    assert alice.http.get(API).json()["data"] == []


def test_an_empty_conversation_takes_its_model_and_system_prompt_from_creation(
    users: Callable[..., Client],
) -> None:
    alice = users("alice")
    created = alice.http.post(API, json={"title": "Pirates", "system": "Talk like a pirate."})
    assert created.status_code == 201
    cid = created.json()["id"]
    reply = alice.send(cid, "Ahoy")
    assert reply["conversation_id"] == cid and reply["model"] == "demo"
    tree = alice.get(cid)
    assert tree["title"] == "Pirates" and tree["system"] == "Talk like a pirate."


def test_a_reply_can_be_asked_for_without_streaming(
    gateway: Gateway, users: Callable[..., Client]
) -> None:
    alice = users("alice")
    response = alice.http.post(f"{API}/new/messages", json={"content": "Hi", "stream": False})
    assert response.status_code == 200
    body = response.json()
    assert body["content"] == compose_reply("Hi") and body["finish_reason"] == "stop"
    assert alice.get(body["conversation_id"])["current_leaf_id"] == body["message_id"]


def test_listing_is_newest_first_a_page_at_a_time(
    gateway: Gateway, users: Callable[..., Client]
) -> None:
    alice = users("alice")
    made = [alice.send("new", f"Question number {i}")["conversation_id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = alice.http.get(API, params=params).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    assert alice.http.get(API, params={"cursor": "garbage!"}).status_code == 400


def test_search_finds_a_word_from_the_middle_of_a_reply(
    gateway: Gateway, users: Callable[..., Client]
) -> None:
    alice = users("alice")
    target = alice.send("new", "Tell me about owls")["conversation_id"]
    alice.send("new", "Tell me about cats")
    # "streamed" sits in the middle of every demo reply; "owls" only in one conversation.
    found = alice.http.get(API, params={"q": "owls"}).json()["data"]
    assert [c["id"] for c in found] == [target]
    assert len(alice.http.get(API, params={"q": "streamed"}).json()["data"]) == 2
    assert alice.http.get(API, params={"q": "zebra"}).json()["data"] == []
    assert alice.http.get(API, params={"q": '"unbalanced (quote OR'}).status_code == 200


def test_another_user_gets_404_for_someone_elses_conversation_everywhere(
    gateway: Gateway, users: Callable[..., Client]
) -> None:
    alice, bob = users("alice"), users("bob")
    first = alice.send("new", "My secret plan")
    cid = first["conversation_id"]
    assert bob.http.get(API).json()["data"] == []
    assert bob.http.get(API, params={"q": "secret"}).json()["data"] == []
    assert bob.http.get(f"{API}/{cid}").status_code == 404
    post = bob.http.post(f"{API}/{cid}/messages", json={"content": "mine now"})
    assert post.status_code == 404
    assert bob.http.get(f"{API}/{cid}/export", params={"format": "md"}).status_code == 404
    assert bob.http.patch(f"{API}/{cid}", json={"title": "x"}).status_code == 404
    assert bob.http.delete(f"{API}/{cid}").status_code == 404
    api = openai.OpenAI(base_url=gateway.base_url, api_key=bob.key, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(
            model="demo",
            messages=[{"role": "user", "content": "x"}],
            extra_body={"conversation_id": cid, "parent_id": first["message_id"]},
        )
    assert len(alice.get(cid)["messages"]) == 2


def test_an_admin_may_read_but_not_change_anothers_conversation(
    gateway: Gateway, users: Callable[..., Client]
) -> None:
    alice, root = users("alice"), users("root", admin=True)
    cid = alice.send("new", "Private note")["conversation_id"]
    assert root.get(cid)["messages"][0]["content"] == "Private note"
    assert root.http.get(f"{API}/{cid}/export").status_code == 200
    assert root.http.post(f"{API}/{cid}/messages", json={"content": "x"}).status_code == 403
    assert root.http.delete(f"{API}/{cid}").status_code == 403


def test_export_markdown_follows_the_current_path(
    gateway: Gateway, users: Callable[..., Client]
) -> None:
    alice = users("alice")
    first = alice.send("new", "First question\nwith two lines")
    cid = first["conversation_id"]
    alice.stream(f"{API}/{cid}/messages/{first['message_id']}/regenerate", {})
    second = alice.send(cid, "Second question")
    md = alice.http.get(f"{API}/{cid}/export", params={"format": "md"})
    assert md.headers["content-type"].startswith("text/markdown")
    text = md.text
    assert text.startswith("# ") and "Model: demo · " in text
    assert "> First question\n> with two lines\n\n" in text
    assert text.rstrip().endswith(second["text"].rstrip())
    assert text.count("```python") == 2
    whole = alice.http.get(f"{API}/{cid}/export", params={"format": "json"}).json()
    assert len(whole["messages"]) == 5 and whole["current_path"][-1] == second["message_id"]


def test_the_model_titles_the_conversation_after_the_first_exchange(
    gateway: Gateway, users: Callable[..., Client]
) -> None:
    alice = users("alice")
    cid = alice.send("new", "How do rivers form in the mountains?")["conversation_id"]
    deadline = time.monotonic() + 10
    while alice.get(cid)["title"].startswith("How do") and time.monotonic() < deadline:
        time.sleep(0.05)
    title = alice.get(cid)["title"]
    # The demo model answers every prompt with 'You asked: "…"' on its first line.
    assert title.startswith("You asked: ") and "rivers" in title


def test_bad_input_gets_a_clear_error(gateway: Gateway, users: Callable[..., Client]) -> None:
    alice = users("alice")
    assert alice.http.post(f"{API}/new/messages", json={"content": ""}).status_code == 422
    missing = alice.http.post(f"{API}/nope/messages", json={"content": "hi"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert alice.http.get(API).status_code == 200
    assert httpx.get(gateway.url + API).status_code == 401
