"""Continuing a reply cut at the token limit over real HTTP: ``{"continue": <reply id>}`` streams
only the new text, the reply is kept as a new version holding the old text and the new, and the
path gains no question; replies that cannot be continued are refused with a clear 400."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from support import Gateway, ServerThread
from test_conversations_api import API, Client, users

from chatgate.demo_upstream import DemoUpstream
from chatgate.providers.demo import compose_reply

__all__ = ["users"]  # the fixture, used by name

QUESTION = "Tell me about the tallest trees."
WHOLE = compose_reply(QUESTION)


def cut_reply(client: Client, cid: str = "new") -> dict[str, Any]:
    """A reply the demo model stops after 12 words (finish_reason ``length``)."""
    cut = client.send(cid, QUESTION, max_tokens=12)
    assert cut["finish_reason"] == "length"
    assert WHOLE.startswith(cut["text"]) and len(cut["text"]) < len(WHOLE)
    return cut


def go_on(client: Client, cid: str, reply_id: str, **extra: Any) -> dict[str, Any]:
    return client.stream(f"{API}/{cid}/messages", {"continue": reply_id, **extra})


def refusal(client: Client, cid: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.http.post(f"{API}/{cid}/messages", json=body)
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


def test_continue_extends_the_cut_reply_into_a_new_version_with_no_new_question(
    gateway: Gateway, users: Callable[..., Client]
) -> None:
    alice = users("alice")
    cut = cut_reply(alice)
    cid = cut["conversation_id"]

    more = go_on(alice, cid, cut["message_id"], max_tokens=12)
    assert more["finish_reason"] == "length"
    assert more["parent_id"] == cut["parent_id"]
    assert more["message_id"] != cut["message_id"]
    assert WHOLE.startswith(cut["text"] + more["text"]) and more["text"]

    rest = go_on(alice, cid, more["message_id"])
    assert rest["finish_reason"] == "stop"
    assert cut["text"] + more["text"] + rest["text"] == WHOLE

    tree = alice.get(cid)
    by_id = {m["id"]: m for m in tree["messages"]}
    assert tree["current_path"] == [cut["parent_id"], rest["message_id"]]
    assert tree["current_leaf_id"] == rest["message_id"]
    assert [m["content"] for m in tree["messages"] if m["role"] == "user"] == [QUESTION]
    versions = [m for m in tree["messages"] if m["parent_id"] == cut["parent_id"]]
    assert [m["content"] for m in versions] == [
        cut["text"],
        cut["text"] + more["text"],
        WHOLE,
    ]
    assert [m["finish_reason"] for m in versions] == ["length", "length", "stop"]
    assert by_id[rest["message_id"]]["completion_tokens"] == rest["usage"]["completion_tokens"]


def test_a_continued_reply_can_be_resumable(gateway: Gateway, users: Callable[..., Client]) -> None:
    alice = users("alice")
    cut = cut_reply(alice)
    cid = cut["conversation_id"]
    events: list[tuple[str, dict[str, Any]]] = []
    body = {"continue": cut["message_id"], "resumable": True}
    with alice.http.stream("POST", f"{API}/{cid}/messages", json=body) as response:
        assert response.status_code == 200
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, orjson.loads(line[6:])))
    names = [name for name, _ in events]
    assert names[0] == "reply" and names[-1] == "done"
    text = "".join(data["text"] for name, data in events if name == "delta")
    done = events[-1][1]
    assert cut["text"] + text == WHOLE
    stored = {m["id"]: m for m in alice.get(cid)["messages"]}
    assert stored[done["message_id"]]["content"] == WHOLE
    assert stored[done["message_id"]]["parent_id"] == cut["parent_id"]


def test_the_upstream_gets_the_cut_reply_as_the_last_message(
    proxied_gateway: Gateway, demo_upstream: ServerThread
) -> None:
    alice = Client(proxied_gateway, "alice")
    cut = cut_reply(alice)
    rest = go_on(alice, cut["conversation_id"], cut["message_id"])
    assert cut["text"] + rest["text"] == WHOLE
    assert isinstance(demo_upstream.app, DemoUpstream)
    assert demo_upstream.app.requests[-1]["messages"] == [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": cut["text"]},
    ]
    alice.http.close()


def test_a_continued_reply_counts_against_the_daily_requests(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(default_daily_requests=2)
    alice = Client(gateway, "alice")
    cut = cut_reply(alice)
    cid = cut["conversation_id"]
    go_on(alice, cid, cut["message_id"], max_tokens=1)
    third = alice.http.post(f"{API}/{cid}/messages", json={"continue": cut["message_id"]})
    assert third.status_code == 429
    alice.http.close()


def test_only_the_callers_own_cut_replies_can_be_continued(
    gateway: Gateway, users: Callable[..., Client]
) -> None:
    alice, bob = users("alice"), users("bob")
    cut = cut_reply(alice)
    cid = cut["conversation_id"]
    whole = alice.send(cid, "And the oldest?")
    bobs = cut_reply(bob)

    question = refusal(alice, cid, {"continue": cut["parent_id"]})
    assert question["param"] == "continue"
    finished = refusal(alice, cid, {"continue": whole["message_id"]})
    assert "length" in finished["message"]
    assert refusal(alice, cid, {"continue": bobs["message_id"]})["param"] == "continue"
    assert refusal(alice, cid, {"continue": "no-such-id"})["param"] == "continue"
    both = refusal(alice, cid, {"continue": cut["message_id"], "content": "more"})
    assert both["param"] == "content"
    assert refusal(alice, "new", {"continue": cut["message_id"]})["param"] == "continue"
    assert refusal(alice, cid, {})["param"] == "content"
    other = bob.http.post(f"{API}/{cid}/messages", json={"continue": cut["message_id"]})
    assert other.status_code == 404

    tree = alice.get(cid)
    assert len(tree["messages"]) == 4  # nothing was added by the refusals
    assert tree["current_leaf_id"] == whole["message_id"]
