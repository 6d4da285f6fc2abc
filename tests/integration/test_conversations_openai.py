"""Conversations through the OpenAI-compatible endpoint, checked at a recording upstream: the
``openai`` package sends the ids as extra body fields and reads them back from the reply."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest
from support import Gateway, ServerThread

from chatgate.demo_upstream import DemoUpstream
from chatgate.providers.demo import compose_reply


@pytest.fixture(params=["in-process", "over-http"])
def any_gateway(request: pytest.FixtureRequest) -> Gateway:
    name = "gateway" if request.param == "in-process" else "proxied_gateway"
    gateway: Gateway = request.getfixturevalue(name)
    return gateway


def client(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)


def ask(api: openai.OpenAI, text: str, **ids: Any) -> dict[str, Any]:
    reply = api.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": text}], extra_body=ids
    )
    extra = reply.model_extra or {}
    return {"text": reply.choices[0].message.content or "", **extra}


def sent_for(upstream: ServerThread, question: str) -> list[dict[str, Any]]:
    """The messages of the one upstream request that ended with ``question``."""
    assert isinstance(upstream.app, DemoUpstream)
    matches = [
        body["messages"]
        for body in upstream.app.requests
        if body["messages"][-1] == {"role": "user", "content": question}
    ]
    assert len(matches) == 1
    return matches[0]


def test_third_reply_sees_exactly_the_path_so_far(
    proxied_gateway: Gateway, demo_upstream: ServerThread
) -> None:
    api = client(proxied_gateway, proxied_gateway.key("alice"))
    first = ask(api, "Name a tree.", conversation_id="new")
    cid = first["conversation_id"]
    second = ask(api, "Name a river.", conversation_id=cid, parent_id=first["message_id"])
    third = ask(api, "Name a mountain.", conversation_id=cid, parent_id=second["message_id"])
    assert third["conversation_id"] == cid and third["parent_id"] != second["message_id"]
    assert sent_for(demo_upstream, "Name a mountain.") == [
        {"role": "user", "content": "Name a tree."},
        {"role": "assistant", "content": first["text"]},
        {"role": "user", "content": "Name a river."},
        {"role": "assistant", "content": second["text"]},
        {"role": "user", "content": "Name a mountain."},
    ]


def test_a_branch_from_the_first_answer_does_not_see_the_second_turn(
    proxied_gateway: Gateway, demo_upstream: ServerThread
) -> None:
    api = client(proxied_gateway, proxied_gateway.key("alice"))
    first = ask(api, "Name a tree.", conversation_id="new")
    cid = first["conversation_id"]
    ask(api, "Name a river.", conversation_id=cid, parent_id=first["message_id"])
    branch = ask(api, "Name a bird.", conversation_id=cid, parent_id=first["message_id"])
    assert branch["conversation_id"] == cid
    assert sent_for(demo_upstream, "Name a bird.") == [
        {"role": "user", "content": "Name a tree."},
        {"role": "assistant", "content": first["text"]},
        {"role": "user", "content": "Name a bird."},
    ]


def stored_messages(gateway: Gateway, conversation_id: str) -> list[Any]:
    gateway.flush()

    async def rows() -> list[Any]:
        from sqlalchemy import select

        from chatgate.store.tables import StoredMessage

        async with gateway.services.db.session() as session:
            stmt = select(StoredMessage).where(StoredMessage.conversation_id == conversation_id)
            return list((await session.scalars(stmt.order_by(StoredMessage.created_at))).all())

    return gateway.run(rows())


def test_the_last_stream_chunk_carries_the_ids(any_gateway: Gateway) -> None:
    api = client(any_gateway, any_gateway.key("alice"))
    chunks = list(
        api.chat.completions.create(
            model="demo",
            messages=[{"role": "user", "content": "Count to three."}],
            stream=True,
            extra_body={"conversation_id": "new"},
        )
    )
    with_ids = [c.model_extra for c in chunks if "conversation_id" in (c.model_extra or {})]
    assert len(with_ids) == 1 and chunks[-1].model_extra == with_ids[0]
    ids = with_ids[0]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    user, reply = stored_messages(any_gateway, ids["conversation_id"])
    assert (user.role, user.content, user.id) == ("user", "Count to three.", ids["parent_id"])
    assert (reply.role, reply.content, reply.id) == ("assistant", text, ids["message_id"])
    assert reply.parent_id == user.id and reply.finish_reason == "stop"


def test_without_parent_id_the_conversation_continues_from_its_leaf(
    proxied_gateway: Gateway, demo_upstream: ServerThread
) -> None:
    api = client(proxied_gateway, proxied_gateway.key("alice"))
    first = ask(api, "Hello there.", conversation_id="new")
    second = ask(api, "And again.", conversation_id=first["conversation_id"])
    assert second["parent_id"] != first["message_id"]
    sent = sent_for(demo_upstream, "And again.")
    assert [m["content"] for m in sent] == ["Hello there.", first["text"], "And again."]


def test_system_prompt_of_a_new_conversation_is_kept_for_later_turns(
    proxied_gateway: Gateway, demo_upstream: ServerThread
) -> None:
    api = client(proxied_gateway, proxied_gateway.key("alice"))
    first = api.chat.completions.create(
        model="demo",
        messages=[
            {"role": "system", "content": "Answer like a pirate."},
            {"role": "user", "content": "Ahoy?"},
        ],
        extra_body={"conversation_id": "new"},
    )
    cid = (first.model_extra or {})["conversation_id"]
    ask(api, "Where is the treasure?", conversation_id=cid)
    sent = sent_for(demo_upstream, "Where is the treasure?")
    assert sent[0] == {"role": "system", "content": "Answer like a pirate."}
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]


def test_requests_without_a_conversation_are_not_stored(gateway: Gateway) -> None:
    api = client(gateway, gateway.key("alice"))
    reply = api.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}])
    assert "conversation_id" not in (reply.model_extra or {})
    page = gateway.run(gateway.services.conversations.page(None))
    assert page.items == []


def test_an_unknown_parent_gets_404(gateway: Gateway) -> None:
    api = client(gateway, gateway.key("alice"))
    first = ask(api, "One.", conversation_id="new")
    with pytest.raises(openai.NotFoundError) as info:
        ask(api, "Two.", conversation_id=first["conversation_id"], parent_id="nope")
    assert info.value.status_code == 404


def test_a_client_disconnect_mid_reply_leaves_the_partial_reply_stored(
    make_gateway: Any,
) -> None:
    gateway: Gateway = make_gateway(demo_chunk_delay=0.05)
    key = gateway.key("alice")
    body = {
        "model": "demo",
        "stream": True,
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "conversation_id": "new",
    }
    received = ""
    with httpx.stream(
        "POST",
        gateway.base_url + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                chunk = json.loads(line[6:])
                received += chunk["choices"][0]["delta"].get("content") or ""
            if len(received.split()) >= 5:
                break
    deadline = time.monotonic() + 10
    while True:
        page = gateway.run(gateway.services.conversations.page(None))
        replies = page.items and [
            m for m in stored_messages(gateway, page.items[0].id) if m.role == "assistant"
        ]
        if replies or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert replies, "the partial reply was not stored"
    [reply] = replies
    assert reply.finish_reason == "cancelled"
    assert reply.content.startswith(received)
    assert 0 < len(reply.content) < len(compose_reply("Tell me a long story."))


def test_a_new_conversation_with_nothing_to_answer_is_refused_and_not_stored(
    gateway: Gateway,
) -> None:
    api = client(gateway, gateway.key("alice"))
    with pytest.raises(openai.BadRequestError) as info:
        api.chat.completions.create(
            model="demo",
            messages=[{"role": "system", "content": "Be brief."}],
            extra_body={"conversation_id": "new"},
        )
    assert info.value.param == "messages"
    assert gateway.run(gateway.services.conversations.page(None)).items == []
