"""The terminal client's two ways to reach chatgate pass the same tests: in this process as the
local user, and over the native API of a live server with a key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest
from faulty_upstream import FaultyUpstream
from support import Gateway

from chatgate.client.base import ChatClient, Finished, Options, ReplyEvent
from chatgate.client.local import LocalClient
from chatgate.client.remote import RemoteClient
from chatgate.core.errors import ChatgateError
from chatgate.settings import Settings


@dataclass
class Harness:
    client: ChatClient
    cap: Callable[[int], Awaitable[None]]


@pytest.fixture(params=["in-process", "remote"])
async def harness(
    request: pytest.FixtureRequest,
    make_settings: Callable[..., Settings],
    make_gateway: Callable[..., Gateway],
) -> AsyncIterator[Harness]:
    if request.param == "in-process":
        local = await LocalClient.open(make_settings(), username="me")

        async def cap_local(n: int) -> None:
            await local.services.accounts.set_quota("me", daily_requests=n)

        yield Harness(local, cap_local)
        await local.close()
        return
    gateway = make_gateway()
    remote = RemoteClient(gateway.url, gateway.key("alice"))

    async def cap_remote(n: int) -> None:
        gateway.run(gateway.services.accounts.set_quota("alice", daily_requests=n))

    yield Harness(remote, cap_remote)
    await remote.close()


async def collect(events: AsyncIterator[ReplyEvent]) -> tuple[list[str], Finished]:
    pieces: list[str] = []
    async for event in events:
        if isinstance(event, Finished):
            return pieces, event
        pieces.append(event)
    raise AssertionError("the reply ended without finishing")


async def test_a_reply_streams_in_pieces_and_starts_a_stored_conversation(
    harness: Harness,
) -> None:
    client = harness.client
    pieces, done = await collect(client.send("new", "Hello there", Options(model="demo")))
    assert len(pieces) > 3 and 'You asked: "Hello there"' in "".join(pieces)
    assert done.finish_reason == "stop" and done.conversation_id and done.message_id
    tree = await client.tree(done.conversation_id)
    path = tree.path_messages()
    assert [m.role for m in path] == ["user", "assistant"]
    assert path[1].content == "".join(pieces)
    listed = await client.conversations()
    assert [c.id for c in listed] == [done.conversation_id]


async def test_a_reply_continues_the_conversation_it_names(harness: Harness) -> None:
    client = harness.client
    _, first = await collect(client.send("new", "one", Options(system="Be brief.")))
    assert first.conversation_id
    _, second = await collect(client.send(first.conversation_id, "two", Options()))
    assert second.conversation_id == first.conversation_id
    tree = await client.tree(first.conversation_id)
    assert [m.content for m in tree.path_messages() if m.role == "user"] == ["one", "two"]
    assert tree.conversation.system_prompt == "Be brief."


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    started = FaultyUpstream().start()
    yield started
    started.stop()


@pytest.fixture(params=["in-process", "remote"])
async def upstream_client(
    request: pytest.FixtureRequest,
    upstream: FaultyUpstream,
    make_settings: Callable[..., Settings],
    make_gateway: Callable[..., Gateway],
) -> AsyncIterator[ChatClient]:
    """A client whose replies come from ``upstream``, so that what was sent can be read."""
    given = {"openai_base_url": upstream.base_url, "openai_api_key": "sk-up"}
    client: ChatClient
    if request.param == "in-process":
        client = await LocalClient.open(make_settings(**given), username="me")
    else:
        gateway = make_gateway(**given)
        client = RemoteClient(gateway.url, gateway.key("alice"))
    yield client
    await client.close()


async def test_a_changed_system_prompt_answers_the_next_question(
    upstream_client: ChatClient, upstream: FaultyUpstream
) -> None:
    client = upstream_client
    _, first = await collect(client.send("new", "one", Options(model="demo", system="Be brief.")))
    conv = first.conversation_id
    assert conv
    await client.set_system(conv, "Answer in French.")
    assert (await client.tree(conv)).conversation.system_prompt == "Answer in French."
    _, second = await collect(client.send(conv, "two", Options(model="demo")))
    assert second.conversation_id == conv
    asked = [s.body["messages"] for s in upstream.chat_requests() if s.body.get("stream")]
    sent = next(m for m in asked if m[-1]["content"] == "two")
    assert sent[0] == {"role": "system", "content": "Answer in French."}
    assert [m["content"] for m in sent if m["role"] == "user"] == ["one", "two"]
    await client.set_system(conv, "")
    assert (await client.tree(conv)).conversation.system_prompt is None


async def test_regenerate_makes_a_branch_and_switch_walks_back(harness: Harness) -> None:
    client = harness.client
    _, first = await collect(client.send("new", "Hello", Options()))
    conv, old = first.conversation_id, first.message_id
    assert conv and old
    _, again = await collect(client.regenerate(conv, old, Options()))
    assert again.message_id != old and again.parent_id == first.parent_id
    tree = await client.tree(conv)
    assert tree.current_path[-1] == again.message_id and len(tree.messages) == 3
    await client.switch(conv, old)
    assert (await client.tree(conv)).current_path[-1] == old


async def test_edit_sends_a_changed_question_as_a_sibling(harness: Harness) -> None:
    client = harness.client
    _, first = await collect(client.send("new", "Hello", Options()))
    assert first.conversation_id and first.parent_id
    pieces, edited = await collect(
        client.edit(first.conversation_id, first.parent_id, "Goodbye", Options())
    )
    assert 'You asked: "Goodbye"' in "".join(pieces)
    tree = await client.tree(first.conversation_id)
    questions = [m for m in tree.messages if m.role == "user"]
    assert {m.content for m in questions} == {"Hello", "Goodbye"}
    assert len({m.parent_id for m in questions}) == 1, "siblings"
    assert tree.current_path[-1] == edited.message_id


async def test_a_prefix_opens_a_conversation_and_rename_and_search_find_it(
    harness: Harness,
) -> None:
    client = harness.client
    _, done = await collect(client.send("new", "zebras and giraffes", Options()))
    conv = done.conversation_id
    assert conv
    assert await client.resolve(conv[:8]) == conv
    with pytest.raises(ChatgateError) as missing:
        await client.resolve("zzzz-no-such")
    assert missing.value.code == "not_found"
    await client.rename(conv, "Animals")
    assert (await client.tree(conv)).conversation.title == "Animals"
    assert [c.id for c in await client.conversations(query="giraffes")] == [conv]
    assert await client.conversations(query="penguins") == []


async def test_models_are_listed_and_an_unknown_one_is_refused_with_its_code(
    harness: Harness,
) -> None:
    client = harness.client
    assert "demo" in await client.models()
    with pytest.raises(ChatgateError) as refused:
        await collect(client.send("new", "Hi", Options(model="no-such-model")))
    assert refused.value.code == "model_not_found"
    assert "no-such-model" in refused.value.message


async def test_remaining_requests_count_down_under_a_cap_then_refuse(harness: Harness) -> None:
    client = harness.client
    assert await client.remaining_requests() is None, "no cap on this user"
    await harness.cap(2)
    assert await client.remaining_requests() == 2
    await collect(client.send("new", "one", Options()))
    assert await client.remaining_requests() == 1
    await collect(client.send("new", "two", Options()))
    assert await client.remaining_requests() == 0
    with pytest.raises(ChatgateError) as refused:
        await collect(client.send("new", "three", Options()))
    assert refused.value.code == "insufficient_quota"
