"""EasyBackend's ``POST /ask/{conversation_id}``, as its clients call it (httpx)."""

from __future__ import annotations

import httpx
from support import Gateway

from chatgate.providers.demo import compose_reply


def ask(
    gateway: Gateway, key: str, conversation: str, prompt: str, parent: str | None
) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/ask/{conversation}",
        json={"prompt": prompt, "parent_id": parent},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_new_starts_a_conversation_and_parent_id_continues_it(gateway: Gateway) -> None:
    key = gateway.key("alice")
    first = ask(gateway, key, "new", "你好", None)
    assert first.status_code == 200
    body = first.json()
    assert body["message"] == compose_reply("你好")
    cid, parent = body["conversation_id"], body["parent_id"]
    second = ask(gateway, key, cid, "Again", parent).json()
    assert second["conversation_id"] == cid and second["parent_id"] != parent
    tree = httpx.get(
        f"{gateway.url}/api/v1/conversations/{cid}", headers={"Authorization": f"Bearer {key}"}
    ).json()
    by_id = {m["id"]: m for m in tree["messages"]}
    question = by_id[by_id[second["parent_id"]]["parent_id"]]
    assert question["content"] == "Again" and question["parent_id"] == parent
    assert tree["current_leaf_id"] == second["parent_id"]


def test_errors_keep_the_detail_shape(gateway: Gateway) -> None:
    alice, bob = gateway.key("alice"), gateway.key("bob")
    cid = ask(gateway, alice, "new", "mine", None).json()["conversation_id"]
    stranger = ask(gateway, bob, cid, "let me in", None)
    assert stranger.status_code == 404 and "detail" in stranger.json()
    empty = ask(gateway, alice, cid, "", None)
    assert empty.status_code == 400 and "prompt" in empty.json()["detail"]
    anonymous = httpx.post(f"{gateway.url}/ask/new", json={"prompt": "hi"})
    assert anonymous.status_code == 401 and anonymous.json()["detail"]
