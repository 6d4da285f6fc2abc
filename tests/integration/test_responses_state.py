"""What a Responses client sends beyond the basics, and the state that outlives a connection:
reasoning, truncation, hints chatgate accepts, hosted tools, metadata kept; tool calls that
survive a restart; resumed streams; background responses.

The official ``openai`` package talks to live gateways in front of Chat-Completions-only models.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from openai import BadRequestError, NotFoundError, OpenAI
from support import Gateway, ServerThread
from upstream_rig import eventually

LOOKUP: Any = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}


@pytest.fixture
def relayed(make_gateway: Callable[..., Gateway], demo_upstream: ServerThread) -> Gateway:
    """chatgate in front of the demo model over HTTP, asking it for nothing but the replies
    (no titles), so the upstream's last request is the last reply's."""
    return make_gateway(
        openai_base_url=demo_upstream.url + "/v1",
        openai_api_key="upstream-key",
        conversation_titles=False,
    )


def _client(gateway: Gateway, user: str = "alice") -> OpenAI:
    return OpenAI(base_url=gateway.base_url, api_key=gateway.key(user), max_retries=0)


def _post(gateway: Gateway, key: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(gateway.base_url + "/responses", json=body, headers=headers, timeout=30)


def test_reasoning_effort_is_passed_on_to_a_chat_upstream(
    relayed: Gateway, demo_upstream: Any
) -> None:
    client = _client(relayed)
    response = client.responses.create(
        model="demo", input="Think hard", reasoning={"effort": "high", "summary": "auto"}
    )
    assert demo_upstream.app.requests[-1]["reasoning_effort"] == "high"
    assert "reasoning" not in demo_upstream.app.requests[-1]
    assert response.reasoning is not None and response.reasoning.effort == "high"


def test_a_codex_style_request_is_answered_and_its_hosted_tools_are_left_out(
    relayed: Gateway, demo_upstream: Any
) -> None:
    """Codex CLI's fields: hints chatgate accepts, a namespace and a hosted tool no chat
    upstream can run (left out, and named in a header), items with ids, store false."""
    key = relayed.key("alice")
    body = {
        "model": "demo",
        "instructions": "You are a coding agent.",
        "input": [
            {
                "type": "message",
                "id": "msg_1",
                "role": "developer",
                "content": [{"type": "input_text", "text": "Work in /repo."}],
            },
            {
                "type": "message",
                "id": "msg_2",
                "role": "user",
                "content": [{"type": "input_text", "text": "Say hello"}],
            },
        ],
        "tools": [
            {**LOOKUP, "description": "Look it up.", "strict": False},
            {"type": "web_search"},
            {
                "type": "namespace",
                "name": "crm",
                "description": "CRM tools",
                "tools": [{"type": "function", "name": "find", "parameters": {"type": "object"}}],
            },
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "session-1234",
        "client_metadata": {"originator": "codex_cli_rs"},
    }
    response = _post(relayed, key, body)
    assert response.status_code == 200, response.text
    assert response.headers["x-chatgate-tools-left-out"] == "web_search"
    data = [json.loads(line[6:]) for line in response.text.splitlines() if line[:6] == "data: "]
    assert data[-1]["type"] == "response.completed"
    assert data[-1]["response"]["usage"]["total_tokens"] > 0
    sent = demo_upstream.app.requests[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["lookup", "crm__find"]
    for hint in ("include", "prompt_cache_key", "client_metadata", "store"):
        assert hint not in sent


def test_a_namespaced_function_is_called_by_its_namespace_and_name(
    relayed: Gateway, demo_upstream: Any
) -> None:
    client = _client(relayed)
    crm: Any = {
        "type": "namespace",
        "name": "crm",
        "description": "CRM tools",
        "tools": [{"type": "function", "name": "find", "parameters": {"type": "object"}}],
    }
    called = client.responses.create(
        model="demo", input="Find Ada", tools=[crm], tool_choice="required"
    )
    call = called.output[-1]
    assert call.type == "function_call"
    assert (call.namespace, call.name) == ("crm", "find")  # type: ignore[union-attr]
    answered = client.responses.create(
        model="demo",
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Ada, 1815"}],
        tools=[crm],
        previous_response_id=called.id,
    )
    assert "Ada, 1815" in answered.output_text
    sent = demo_upstream.app.requests[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["function"]["name"] == "crm__find"
    replayed = list(client.responses.retrieve(called.id, stream=True))
    assert replayed[-1].response.output[-1].namespace == "crm"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("truncation", "sometimes"),
        ("include", "reasoning.encrypted_content"),
        ("prompt_cache_key", 7),
        ("client_metadata", ["x"]),
        ("reasoning", "high"),
        ("background", "yes"),
    ],
)
def test_a_malformed_hint_is_a_clear_400_naming_it(
    gateway: Gateway, field: str, value: Any
) -> None:
    response = _post(gateway, gateway.key("alice"), {"model": "demo", "input": "hi", field: value})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == field


def test_metadata_and_the_request_are_returned_on_retrieve(gateway: Gateway) -> None:
    client = _client(gateway)
    created = client.responses.create(
        model="demo",
        input="Keep my labels",
        instructions="Be brief",
        metadata={"run": "42", "team": "blue"},
        tools=[LOOKUP],
        tool_choice="none",
        temperature=0.5,
        truncation="auto",
    )
    again = client.responses.retrieve(created.id)
    assert again.metadata == {"run": "42", "team": "blue"}
    assert again.instructions == "Be brief"
    assert again.temperature == 0.5 and again.truncation == "auto"
    assert [tool.name for tool in again.tools] == ["lookup"]  # type: ignore[union-attr]


def test_a_chained_function_call_output_finds_its_call_after_a_restart(
    make_gateway: Callable[..., Gateway], demo_upstream: ServerThread
) -> None:
    """The Agents SDK sends only the tool's output with previous_response_id; the call it
    answers is read from the database by a gateway started again."""
    upstream = {
        "openai_base_url": demo_upstream.url + "/v1",
        "openai_api_key": "k",
        "conversation_titles": False,
    }
    first = make_gateway(**upstream)
    key = first.key("alice")
    client = OpenAI(base_url=first.base_url, api_key=key, max_retries=0)
    called = client.responses.create(
        model="demo", input="Use the tool please", tools=[LOOKUP], tool_choice="required"
    )
    call = called.output[-1]
    assert call.type == "function_call"
    first.stop()

    second = make_gateway(**upstream)
    client = OpenAI(base_url=second.base_url, api_key=key, max_retries=0)
    retrieved = client.responses.retrieve(called.id)
    assert retrieved.output[-1].type == "function_call"
    assert retrieved.output[-1].call_id == call.call_id  # type: ignore[union-attr]
    answered = client.responses.create(
        model="demo",
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "found it"}],
        tools=[LOOKUP],
        previous_response_id=called.id,
    )
    assert "found it" in answered.output_text
    sent = demo_upstream.app.requests[-1]["messages"]  # type: ignore[attr-defined]
    assert sent[-2]["tool_calls"][0]["id"] == call.call_id
    assert sent[-2]["tool_calls"][0]["function"]["name"] == "lookup"


def _small_window(make_gateway: Callable[..., Gateway]) -> Gateway:
    return make_gateway(models=[{"name": "demo", "deployments": ["demo"], "context_window": 300}])


def test_truncation_disabled_refuses_what_does_not_fit_the_window(
    make_gateway: Callable[..., Gateway],
) -> None:
    client = _client(_small_window(make_gateway))
    first = client.responses.create(model="demo", input="word " * 150, max_output_tokens=20)
    with pytest.raises(BadRequestError) as refused:
        client.responses.create(
            model="demo",
            input="word " * 150,
            previous_response_id=first.id,
            max_output_tokens=20,
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["code"] == "context_length_exceeded" and error["param"] == "input"
    assert "truncation" in error["message"]


@pytest.mark.parametrize("store", [True, False], ids=["stored", "not-stored"])
def test_truncation_auto_drops_the_oldest_turns(
    make_gateway: Callable[..., Gateway], demo_upstream: ServerThread, store: bool
) -> None:
    gateway = make_gateway(
        openai_base_url=demo_upstream.url + "/v1",
        openai_api_key="k",
        conversation_titles=False,
        models=[{"name": "small", "deployments": ["openai"], "upstream_name": "demo",
                 "context_window": 300}],
    )  # fmt: skip
    client = _client(gateway)
    first = client.responses.create(model="small", input="oldest " * 150, max_output_tokens=20)
    response = client.responses.create(
        model="small",
        input="newest " * 150,
        previous_response_id=first.id,
        truncation="auto",
        max_output_tokens=20,
        store=store,
    )
    assert response.status == "incomplete" or response.status == "completed"
    sent = demo_upstream.app.requests[-1]["messages"]  # type: ignore[attr-defined]
    assert [m["role"] for m in sent] == ["user"]
    assert sent[0]["content"].startswith("newest")


def test_a_stream_is_resumed_after_the_last_event_seen(gateway: Gateway) -> None:
    client = _client(gateway)
    events = list(client.responses.create(model="demo", input="Resume me", stream=True))
    resp_id = events[0].response.id
    resumed = list(client.responses.retrieve(resp_id, stream=True, starting_after=4))
    assert [e.sequence_number for e in resumed] == [e.sequence_number for e in events[5:]]
    assert [e.type for e in resumed] == [e.type for e in events[5:]]
    assert resumed[-1].response.output_text == events[-1].response.output_text
    whole = list(client.responses.retrieve(resp_id, stream=True))
    assert len(whole) == len(events)


def test_a_finished_response_is_replayed_as_a_stream_after_a_restart(
    make_gateway: Callable[..., Gateway],
) -> None:
    first = make_gateway()
    key = first.key("alice")
    client = OpenAI(base_url=first.base_url, api_key=key, max_retries=0)
    created = client.responses.create(model="demo", input="Replay me later", metadata={"k": "v"})
    first.stop()
    second = make_gateway()
    client = OpenAI(base_url=second.base_url, api_key=key, max_retries=0)
    events = list(client.responses.retrieve(created.id, stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == created.output_text
    assert events[-1].response.metadata == {"k": "v"}
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == created.output_text
    tail = list(client.responses.retrieve(created.id, stream=True, starting_after=3))
    assert tail[0].sequence_number == 4


def test_another_users_stream_is_not_found(gateway: Gateway) -> None:
    created = _client(gateway).responses.create(model="demo", input="mine")
    with pytest.raises(NotFoundError):
        list(_client(gateway, "mallory").responses.retrieve(created.id, stream=True))


def test_a_background_response_is_polled_until_it_completes(slow_gateway: Gateway) -> None:
    client = _client(slow_gateway)
    queued = client.responses.create(model="demo", input="Work in the background", background=True)
    assert queued.status == "queued" and queued.background is True
    eventually(
        lambda: client.responses.retrieve(queued.id).status == "completed",
        "the background response completed",
        timeout=20,
    )
    done = client.responses.retrieve(queued.id)
    assert 'You asked: "Work in the background"' in done.output_text
    assert done.usage is not None and done.usage.output_tokens > 0


def test_a_background_stream_outlives_its_client_and_is_followed_live(
    slow_gateway: Gateway,
) -> None:
    client = _client(slow_gateway)
    stream = client.responses.create(
        model="demo", input="Stream in the background", background=True, stream=True
    )
    seen = []
    for event in stream:
        seen.append(event)
        if event.type == "response.output_text.delta":
            break
    stream.close()  # the client leaves; the response goes on
    assert [e.type for e in seen[:3]] == [
        "response.created",
        "response.queued",
        "response.in_progress",
    ]
    rest = list(client.responses.retrieve(seen[0].response.id, stream=True,
                                          starting_after=seen[-1].sequence_number))  # fmt: skip
    assert rest[0].sequence_number == seen[-1].sequence_number + 1
    assert rest[-1].type == "response.completed"
    text = "".join(e.delta for e in [*seen, *rest] if e.type == "response.output_text.delta")
    assert text == rest[-1].response.output_text


def test_a_background_response_is_cancelled_keeping_what_it_had(
    slow_gateway: Gateway, watched_upstream: Any
) -> None:
    client = _client(slow_gateway)
    queued = client.responses.create(model="demo", input="A long task", background=True)
    eventually(
        lambda: client.responses.retrieve(queued.id).output_text != "",
        "the response started writing",
        timeout=20,
    )
    cancelled = client.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    assert watched_upstream.app.wait_hangups(1)
    again = client.responses.cancel(queued.id)
    assert again.status == "cancelled"
    stored = client.responses.retrieve(queued.id)
    assert stored.status == "cancelled"
    assert stored.output_text and stored.output_text == cancelled.output_text
    with pytest.raises(NotFoundError):
        _client(slow_gateway, "mallory").responses.cancel(queued.id)


def test_a_background_response_must_be_stored(gateway: Gateway) -> None:
    with pytest.raises(BadRequestError, match="stored"):
        _client(gateway).responses.create(model="demo", input="hi", background=True, store=False)


@pytest.mark.parametrize(
    "query",
    ["?stream=true&starting_after=abc", "?stream=true&starting_after=-2", "?starting_after=²"],
)
def test_a_malformed_starting_after_is_a_clear_400(gateway: Gateway, query: str) -> None:
    key = gateway.key("alice")
    created = _post(gateway, key, {"model": "demo", "input": "hi"}).json()
    headers = {"authorization": f"Bearer {key}"}
    answer = httpx.get(f"{gateway.base_url}/responses/{created['id']}{query}", headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "starting_after"
    items = httpx.get(
        f"{gateway.base_url}/responses/{created['id']}/input_items?limit=²", headers=headers
    )
    assert items.status_code == 400 and items.json()["error"]["param"] == "limit"
