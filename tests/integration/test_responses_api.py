"""OpenAI's Responses API through chatgate, in front of a Chat-Completions-only model.

The official ``openai`` package talks to a live gateway serving the demo model; the state of
every chain lives in chatgate's conversation trees, readable through the native API.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from faulty_upstream import Act, FaultyUpstream, stall, stall_after
from openai import BadRequestError, NotFoundError, OpenAI
from support import Gateway
from test_client_leaves import Leaver, _send_and_leave
from upstream_rig import eventually, request_log


def _client(gateway: Gateway, user: str = "alice") -> OpenAI:
    return OpenAI(base_url=gateway.base_url, api_key=gateway.key(user), max_retries=0)


def _streamed(client: OpenAI, **kwargs: Any) -> tuple[list[Any], Any]:
    """Every event of a streamed response, and the response ``response.completed`` carried."""
    events = list(client.responses.create(stream=True, **kwargs))
    final = events[-1].response
    return events, final


def test_a_question_as_text_gets_a_response_with_usage(gateway: Gateway) -> None:
    client = _client(gateway)
    response = client.responses.create(model="demo", input="Hello there", instructions="Be brief")
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert 'You asked: "Hello there"' in response.output_text
    message = response.output[0]
    assert message.type == "message" and message.id.startswith("msg_")
    assert response.usage is not None
    assert response.usage.total_tokens == (
        response.usage.input_tokens + response.usage.output_tokens
    )
    assert response.instructions == "Be brief"


def test_a_streamed_response_sends_the_responses_event_sequence(gateway: Gateway) -> None:
    events, final = _streamed(_client(gateway), model="demo", input="Stream me")
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert final.output_text == text and 'You asked: "Stream me"' in text
    assert events[-2].item.content[0].text == text
    assert final.id == events[0].response.id
    assert final.usage.output_tokens > 0


def test_a_chain_continues_the_instant_the_first_stream_ends(gateway: Gateway) -> None:
    client = _client(gateway)
    _, first = _streamed(client, model="demo", input="My name is Ada")
    second = client.responses.create(
        model="demo", input="What is my name?", previous_response_id=first.id
    )
    _, third = _streamed(
        client, model="demo", input="And once more", previous_response_id=second.id
    )
    assert third.previous_response_id == second.id
    items = client.responses.input_items.list(third.id, order="asc")
    texts = [item.content[0].text for item in items.data]
    assert texts[0] == "My name is Ada"
    assert texts[1] == first.output_text
    assert texts[2] == "What is my name?"
    assert texts[3] == second.output_text
    assert texts[4] == "And once more"


def test_a_chain_made_without_a_pause_sees_the_whole_history_upstream(
    proxied_gateway: Gateway, demo_upstream: Any
) -> None:
    client = _client(proxied_gateway)
    _, first = _streamed(client, model="demo", input="first question")
    client.responses.create(model="demo", input="second question", previous_response_id=first.id)
    sent = demo_upstream.app.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "first question"
    assert sent[1]["content"] == first.output_text


def test_branching_from_the_first_response_makes_a_sibling(gateway: Gateway) -> None:
    client = _client(gateway)
    first = client.responses.create(model="demo", input="root question")
    left = client.responses.create(model="demo", input="left", previous_response_id=first.id)
    right = client.responses.create(model="demo", input="right", previous_response_id=first.id)
    right_items = client.responses.input_items.list(right.id, order="asc").data
    assert [i.content[0].text for i in right_items] == [
        "root question",
        first.output_text,
        "right",
    ]
    key = gateway.key("alice")
    tree = _native(gateway, key, "GET", f"/api/v1/conversations/{right.conversation.id}")
    assert left.conversation.id == right.conversation.id
    reply_ids = {m["id"] for m in tree["messages"] if m["role"] == "user"}
    assert len(reply_ids) == 3


def _native(gateway: Gateway, key: str, method: str, path: str) -> Any:
    response = httpx.request(method, gateway.url + path, headers={"authorization": f"Bearer {key}"})
    response.raise_for_status()
    return response.json() if "json" in response.headers["content-type"] else response.text


def test_a_function_tool_call_round_trips(gateway: Gateway) -> None:
    client = _client(gateway)
    tools: Any = [
        {
            "type": "function",
            "name": "lookup",
            "description": "Look something up.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
        {"type": "web_search"},
    ]
    question = [{"role": "user", "content": "Use the tool to look up the weather"}]
    called = client.responses.create(model="demo", input=question, tools=tools, store=False)
    call = called.output[-1]
    assert call.type == "function_call" and call.name == "lookup"
    assert json.loads(call.arguments)["query"].startswith("Use the tool")
    answered = client.responses.create(
        model="demo",
        input=[
            *question,
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
        ],
        tools=tools,
        store=False,
    )
    assert answered.status == "completed"
    assert "sunny, 21 C" in answered.output_text


def test_a_streamed_tool_call_ends_with_the_complete_item(gateway: Gateway) -> None:
    tools: Any = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    events, final = _streamed(
        _client(gateway), model="demo", input="hi", tools=tools, tool_choice="required"
    )
    done = [e for e in events if e.type == "response.output_item.done"]
    assert done[-1].item.type == "function_call" and done[-1].item.name == "lookup"
    arguments = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert arguments[0].arguments == done[-1].item.arguments
    assert final.output[-1].arguments == done[-1].item.arguments


def test_a_conversation_is_continued_from_its_leaf(gateway: Gateway) -> None:
    client = _client(gateway)
    first = client.responses.create(model="demo", input="opening")
    conversation = first.conversation.id
    second = client.responses.create(model="demo", input="follow-up", conversation=conversation)
    assert second.conversation.id == conversation
    items = client.responses.input_items.list(second.id, order="asc").data
    assert items[0].content[0].text == "opening"


def test_store_false_keeps_nothing_but_usage(gateway: Gateway) -> None:
    client = _client(gateway)
    before = len(gateway.stored_messages())
    response = client.responses.create(model="demo", input="forget me", store=False)
    assert response.store is False
    assert len(gateway.stored_messages()) == before
    with pytest.raises(NotFoundError):
        client.responses.retrieve(response.id)
    assert any(row.status == "ok" for row in gateway.request_log())


def test_a_streamed_response_can_be_retrieved_and_deleted(gateway: Gateway) -> None:
    client = _client(gateway)
    _, streamed = _streamed(client, model="demo", input="keep this")
    again = client.responses.retrieve(streamed.id)
    assert again.output_text == streamed.output_text
    assert again.status == "completed"
    assert again.usage.output_tokens == streamed.usage.output_tokens
    client.responses.delete(streamed.id)
    with pytest.raises(NotFoundError):
        client.responses.retrieve(streamed.id)


def test_another_users_response_is_not_found(gateway: Gateway) -> None:
    mine = _client(gateway, "alice").responses.create(model="demo", input="private")
    theirs = _client(gateway, "mallory")
    with pytest.raises(NotFoundError):
        theirs.responses.retrieve(mine.id)
    with pytest.raises(NotFoundError):
        theirs.responses.create(model="demo", input="hi", previous_response_id=mine.id)
    with pytest.raises(NotFoundError):
        theirs.responses.input_items.list(mine.id)
    with pytest.raises(NotFoundError):
        theirs.responses.delete(mine.id)


def test_a_conversation_made_through_responses_is_listed_and_exported(gateway: Gateway) -> None:
    key = gateway.key("alice")
    client = OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)
    response = client.responses.create(model="demo", input="Export me please")
    listed = _native(gateway, key, "GET", "/api/v1/conversations")
    assert response.conversation.id in {c["id"] for c in listed["data"]}
    markdown = _native(
        gateway, key, "GET", f"/api/v1/conversations/{response.conversation.id}/export?format=md"
    )
    assert "Export me please" in markdown
    assert response.output_text.splitlines()[0] in markdown


def test_max_output_tokens_ends_incomplete(gateway: Gateway) -> None:
    events, final = _streamed(
        _client(gateway), model="demo", input="a long answer", max_output_tokens=3
    )
    assert events[-1].type == "response.incomplete"
    assert final.status == "incomplete"
    assert final.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi"}, "model"),
        ({"model": "demo", "input": 3}, "input"),
        ({"model": "demo", "input": [{"type": "mystery"}]}, None),
        (
            {"model": "demo", "input": "hi", "previous_response_id": "resp_x", "conversation": "c"},
            "conversation",
        ),
        ({"model": "demo", "input": "hi", "metadata": {"k": 1}}, "metadata"),
        ({"model": "demo", "input": "hi", "text": {"format": {"type": "xml"}}}, None),
        ({"model": "demo", "input": "hi", "temperature": 9}, "temperature"),
    ],
)
def test_a_malformed_request_is_a_clear_400(
    gateway: Gateway, body: dict[str, Any], param: str | None
) -> None:
    key = gateway.key("alice")
    response = httpx.post(
        gateway.base_url + "/responses", json=body, headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param


@pytest.fixture
def faulty() -> Iterator[FaultyUpstream]:
    upstream = FaultyUpstream().start()
    yield upstream
    upstream.stop()


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("act", [stall(), stall_after(1)], ids=["silent", "after-first-chunk"])
def test_a_client_that_leaves_a_response_cancels_the_upstream_call(
    make_gateway: Callable[..., Gateway], faulty: FaultyUpstream, stream: bool, act: Act
) -> None:
    gateway = make_gateway(openai_base_url=faulty.base_url, openai_api_key="k")
    key = gateway.key("leaver")
    faulty.enqueue(act)
    body = {"model": "demo", "input": "hi", "stream": stream}
    _send_and_leave(gateway, faulty, Leaver("responses", "POST", "/v1/responses", body, act), key)
    eventually(lambda: faulty.busy == 0, "the upstream saw the hang-up", timeout=1.0)
    eventually(
        lambda: [r.status for r in request_log(gateway, "leaver")] == ["cancelled"],
        "the request was settled as cancelled",
    )


def test_a_conversation_made_by_the_conversations_api_is_continued_by_responses(
    gateway: Gateway,
) -> None:
    client = _client(gateway)
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "Remember the word oak."}]
    )
    response = client.responses.create(
        model="demo", input="Which word?", conversation=conversation.id
    )
    assert response.conversation.id == conversation.id
    items = client.conversations.items.list(conversation.id, order="asc").data
    texts = [item.content[0].text for item in items]
    assert texts == ["Remember the word oak.", "Which word?", response.output_text]


def test_a_chained_function_call_output_finds_the_call_it_answers(
    proxied_gateway: Gateway, demo_upstream: Any
) -> None:
    """As the Agents SDK chains: only the tool's output is sent, the call comes from chatgate."""
    client = _client(proxied_gateway)
    tools: Any = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    called = client.responses.create(
        model="demo", input="Use the tool please", tools=tools, tool_choice="required"
    )
    call = called.output[-1]
    assert call.type == "function_call"
    assert client.responses.retrieve(called.id).output[-1].call_id == call.call_id
    answered = client.responses.create(
        model="demo",
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "found it"}],
        tools=tools,
        previous_response_id=called.id,
    )
    assert "found it" in answered.output_text
    sent = demo_upstream.app.requests[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == call.call_id
    assert sent[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "found it"}


def test_a_responses_message_is_the_same_item_in_the_conversations_api(gateway: Gateway) -> None:
    client = _client(gateway)
    response = client.responses.create(model="demo", input="Same ids?")
    items = client.conversations.items.list(response.conversation.id, order="asc").data
    assert items[-1].id == response.output[0].id
    inputs = client.responses.input_items.list(response.id).data
    assert inputs[0].id == items[0].id


def test_a_response_that_is_not_in_the_background_cannot_be_cancelled(gateway: Gateway) -> None:
    client = _client(gateway)
    response = client.responses.create(model="demo", input="hi")
    with pytest.raises(BadRequestError, match="background"):
        client.responses.cancel(response.id)
    with pytest.raises(NotFoundError):
        _client(gateway, "mallory").responses.cancel(response.id)


def test_a_question_is_not_a_response_to_continue_from(gateway: Gateway) -> None:
    client = _client(gateway)
    response = client.responses.create(model="demo", input="a question")
    question_id = client.responses.input_items.list(response.id).data[0].id
    not_a_response = "resp_" + question_id.removeprefix("msg_")
    with pytest.raises(NotFoundError):
        client.responses.create(model="demo", input="hi", previous_response_id=not_a_response)
    with pytest.raises(NotFoundError):
        client.responses.retrieve(not_a_response)
