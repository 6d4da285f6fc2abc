"""OpenAI's Conversations API with the official ``openai`` package: the same conversations the
native API shows, its items the messages of the current path."""

from __future__ import annotations

import httpx
import openai
import pytest
from support import Gateway

NATIVE = "/api/v1/conversations"


def client(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)


def native(gateway: Gateway, key: str) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"})


def say(role: str, text: str) -> dict[str, str]:
    return {"type": "message", "role": role, "content": text}


def test_create_retrieve_update_delete(gateway: Gateway) -> None:
    api = client(gateway, gateway.key("alice"))
    made = api.conversations.create(metadata={"title": "Trees"})
    assert made.object == "conversation" and made.metadata == {"title": "Trees"}
    assert made.created_at > 0
    assert api.conversations.retrieve(made.id).metadata == {"title": "Trees"}
    changed = api.conversations.update(made.id, metadata={"title": "Rivers"})
    assert changed.metadata == {"title": "Rivers"}
    gone = api.conversations.delete(made.id)
    assert (gone.id, gone.deleted, gone.object) == (made.id, True, "conversation.deleted")
    with pytest.raises(openai.NotFoundError):
        api.conversations.retrieve(made.id)


def test_items_are_the_current_path_and_can_be_paged(gateway: Gateway) -> None:
    api = client(gateway, gateway.key("alice"))
    made = api.conversations.create(items=[say("user", "Name a tree."), say("assistant", "Oak.")])
    added = api.conversations.items.create(made.id, items=[say("user", "Name a river.")])
    assert [i.content[0].text for i in added.data] == ["Name a river."]  # type: ignore[union-attr]
    assert added.first_id == added.last_id == added.data[0].id
    newest = api.conversations.items.list(made.id, limit=2)
    texts = [i.content[0].text for i in newest.data]  # type: ignore[union-attr]
    assert texts == ["Name a river.", "Oak."] and newest.has_more
    rest = api.conversations.items.list(made.id, limit=2, after=newest.last_id)
    assert [i.content[0].text for i in rest.data] == ["Name a tree."]  # type: ignore[union-attr]
    assert not rest.has_more
    oldest = api.conversations.items.list(made.id, order="asc")
    kinds = [(i.role, i.content[0].type) for i in oldest.data]  # type: ignore[union-attr]
    assert kinds == [("user", "input_text"), ("assistant", "output_text"), ("user", "input_text")]
    assert all(i.id.startswith("msg_") for i in oldest.data)


def test_item_retrieve_and_delete(gateway: Gateway) -> None:
    api = client(gateway, gateway.key("alice"))
    made = api.conversations.create(
        items=[say("user", "one"), say("assistant", "two"), say("user", "three")]
    )
    items = api.conversations.items.list(made.id, order="asc").data
    middle = api.conversations.items.retrieve(items[1].id, conversation_id=made.id)
    assert middle.id == items[1].id and middle.content[0].text == "two"  # type: ignore[union-attr]
    after = api.conversations.items.delete(items[1].id, conversation_id=made.id)
    assert after.id == made.id
    left = api.conversations.items.list(made.id, order="asc").data
    assert [i.content[0].text for i in left] == ["one", "three"]  # type: ignore[union-attr]
    with pytest.raises(openai.NotFoundError):
        api.conversations.items.retrieve(items[1].id, conversation_id=made.id)


def test_a_conversation_made_here_is_read_and_exported_natively(gateway: Gateway) -> None:
    key = gateway.key("alice")
    made = client(gateway, key).conversations.create(
        metadata={"title": "Capitals"},
        items=[say("user", "Capital of France?"), say("assistant", "Paris.")],
    )
    with native(gateway, key) as http:
        listed = http.get(NATIVE).json()["data"]
        detail = http.get(f"{NATIVE}/{made.id}").json()
        markdown = http.get(f"{NATIVE}/{made.id}/export", params={"format": "md"}).text
    assert [(c["id"], c["title"]) for c in listed] == [(made.id, "Capitals")]
    assert [m["content"] for m in detail["messages"]] == ["Capital of France?", "Paris."]
    assert "Capital of France?" in markdown and "Paris." in markdown


def test_a_reply_asked_natively_becomes_the_next_item(gateway: Gateway) -> None:
    key = gateway.key("alice")
    api = client(gateway, key)
    made = api.conversations.create(items=[say("user", "Name a tree.")])
    body = {"content": "And a river?", "stream": False}
    with native(gateway, key) as http:
        reply = http.post(f"{NATIVE}/{made.id}/messages", json=body).json()
    items = api.conversations.items.list(made.id, order="asc").data
    assert [i.role for i in items] == ["user", "user", "assistant"]
    assert items[-1].id == "msg_" + reply["message_id"]


def test_another_users_conversation_is_not_found(gateway: Gateway) -> None:
    made = client(gateway, gateway.key("alice")).conversations.create(items=[say("user", "hi")])
    item = client(gateway, gateway.key("alice")).conversations.items.list(made.id).data[0]
    bob = client(gateway, gateway.key("bob"))
    calls = [
        lambda: bob.conversations.retrieve(made.id),
        lambda: bob.conversations.update(made.id, metadata={"title": "mine"}),
        lambda: bob.conversations.delete(made.id),
        lambda: bob.conversations.items.list(made.id),
        lambda: bob.conversations.items.create(made.id, items=[say("user", "x")]),
        lambda: bob.conversations.items.retrieve(item.id, conversation_id=made.id),
        lambda: bob.conversations.items.delete(item.id, conversation_id=made.id),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as refused:
            call()
        assert refused.value.body["code"]  # type: ignore[index]
    assert client(gateway, gateway.key("alice")).conversations.retrieve(made.id).id == made.id


def test_metadata_chatgate_cannot_keep_is_refused(gateway: Gateway) -> None:
    api = client(gateway, gateway.key("alice"))
    with pytest.raises(openai.BadRequestError) as refused:
        api.conversations.create(metadata={"project": "x"})
    assert "title" in refused.value.message


def test_conversations_need_a_key(gateway: Gateway) -> None:
    response = httpx.get(gateway.url + "/v1/conversations/abc")
    assert response.status_code == 401
    assert response.json()["error"]["message"]
