"""``POST /v1/responses`` passed through to upstreams that speak the Responses API themselves
(``responses = "passthrough"``), with the official ``openai`` package against a live gateway.

The upstreams keep no state: chatgate sends them the whole input with ``store: false`` and
keeps the exchange in its own tree, so its own ids are the only ones a client sees, and
quotas, usage, fallbacks, ownership and the stored response work as on the translated path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import NotFoundError, OpenAI, RateLimitError
from responses_upstream import (
    MODEL,
    Reply,
    ResponsesUpstream,
    failure,
    function_call,
    text,
    web_search,
)
from support import Gateway, ServerThread
from test_openai_conformance import Check, conforms  # noqa: F401  (the shared fixture)
from test_responses_conformance import EVENT_SCHEMAS
from upstream_rig import eventually, request_log

from chatgate.demo_upstream import DemoUpstream

PRICES = {"input_price": 2.0, "output_price": 8.0}
LOOKUP = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
HOSTED = {
    **EVENT_SCHEMAS,
    "response.web_search_call.in_progress": "ResponseWebSearchCallInProgressEvent",
    "response.web_search_call.searching": "ResponseWebSearchCallSearchingEvent",
    "response.web_search_call.completed": "ResponseWebSearchCallCompletedEvent",
}


@pytest.fixture
def check(request: pytest.FixtureRequest) -> Check:
    """The shared schema checker (``conforms`` of ``test_openai_conformance.py``)."""
    checker: Check = request.getfixturevalue("conforms")
    return checker


@pytest.fixture
def upstreams() -> Iterator[tuple[ServerThread, ServerThread]]:
    first = ServerThread(ResponsesUpstream()).start()
    second = ServerThread(ResponsesUpstream()).start()
    yield first, second
    first.stop()
    second.stop()


def _settings(first: ServerThread, second: ServerThread) -> dict[str, Any]:
    def provider(name: str, server: ServerThread) -> dict[str, Any]:
        return {
            "name": name,
            "base_url": server.url + "/v1",
            "api_keys": [f"{name}-key"],
            "responses": "passthrough",
            "discover_models": False,
        }

    return {
        "providers": [provider("first", first), provider("second", second)],
        "models": [
            {"name": "gpt-pass", "deployments": ["first"], "upstream_name": MODEL, **PRICES},
            {
                "name": "gpt-chain",
                "deployments": ["first", "second"],
                "upstream_name": MODEL,
                **PRICES,
            },
        ],
        "models_refresh_seconds": 0,
        "conversation_titles": False,  # titles are asked for as chat, which these do not speak
        "routing": {"retries": 0, "backoff_base": 0.01, "breaker_failures": 1000},
    }


@pytest.fixture
def make_passing(
    make_gateway: Callable[..., Gateway], upstreams: tuple[ServerThread, ServerThread]
) -> Callable[..., Gateway]:
    def make(**overrides: Any) -> Gateway:
        return make_gateway(**{**_settings(*upstreams), **overrides})

    return make


@pytest.fixture
def gateway(make_passing: Callable[..., Gateway]) -> Gateway:
    return make_passing()


def _upstream(server: ServerThread) -> ResponsesUpstream:
    app: ResponsesUpstream = server.app
    return app


def _client(gateway: Gateway, user: str = "alice") -> OpenAI:
    return OpenAI(base_url=gateway.base_url, api_key=gateway.key(user), max_retries=0)


def _raw_stream(gateway: Gateway, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gateway.key('alice')}"}
    return httpx.post(
        gateway.base_url + "/responses", json={**body, "stream": True}, headers=headers, timeout=30
    )


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    lines = response.text.splitlines()
    names = [line[7:] for line in lines if line.startswith("event: ")]
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert names == [d["type"] for d in data], response.text
    return data


def test_a_passed_through_response_has_chatgates_ids_and_the_upstreams_usage(
    gateway: Gateway, upstreams: tuple[ServerThread, ServerThread], check: Check
) -> None:
    upstream = _upstream(upstreams[0])
    response = _client(gateway).responses.create(
        model="gpt-pass", input="Hello there", instructions="Be brief"
    )
    assert response.output_text == "Hello from upstream"
    assert response.id.startswith("resp_") and "up" not in response.id.split("_", 1)[0]
    assert response.output[0].id == "msg_" + response.id[len("resp_") :]
    assert response.model == "gpt-pass" and response.instructions == "Be brief"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 7)
    assert response.usage.output_tokens_details.reasoning_tokens == 2
    assert upstream.paths == ["/v1/responses"]
    sent = upstream.requests[0]
    assert sent["store"] is False and sent["stream"] is True and sent["model"] == MODEL
    assert sent["input"] == [{"type": "message", "role": "user", "content": "Hello there"}]
    assert sent["instructions"] == "Be brief"
    assert check("Response", response.model_dump(mode="json", exclude_unset=True)) == []


def test_a_streamed_pass_through_relays_hosted_tools_and_calls_under_chatgates_ids(
    gateway: Gateway, upstreams: tuple[ServerThread, ServerThread], check: Check
) -> None:
    upstream = _upstream(upstreams[0])
    upstream.enqueue(
        Reply([web_search("weather in Paris"), text("It is sunny"), function_call("lookup", "{}")])
    )
    body = {
        "model": "gpt-pass",
        "input": "Weather?",
        "tools": [LOOKUP, {"type": "web_search"}],
        "reasoning": {"effort": "high", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
    }
    streamed = _raw_stream(gateway, body)
    assert streamed.status_code == 200, streamed.text
    assert "x-chatgate-tools-left-out" not in streamed.headers
    assert "_up" not in streamed.text  # no upstream id reaches the client
    events = _events(streamed)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events:
        assert check(HOSTED[event["type"]], event) == [], event
        assert check("ResponseStreamEvent", event) == [], event
    final = events[-1]["response"]
    assert events[0]["response"]["id"] == final["id"]
    assert [i["type"] for i in final["output"]] == ["web_search_call", "message", "function_call"]
    assert final["output"][2]["call_id"] == "call_1"  # the client's handle, kept
    assert final["usage"]["total_tokens"] == 18
    assert {"type": "web_search"} in final["tools"]
    sent = upstream.requests[0]
    assert sent["tools"] == body["tools"]
    assert sent["reasoning"] == body["reasoning"] and sent["include"] == body["include"]


def test_instructions_and_developer_messages_both_reach_the_upstream(
    gateway: Gateway, upstreams: tuple[ServerThread, ServerThread]
) -> None:
    upstream = _upstream(upstreams[0])
    client = _client(gateway)
    developer = {"type": "message", "role": "developer", "content": "Use metric units."}
    first = client.responses.create(
        model="gpt-pass",
        instructions="Be brief",
        input=[developer, {"role": "user", "content": "Hi"}],
    )
    client.responses.create(model="gpt-pass", input="Again", previous_response_id=first.id)
    opening, chained = upstream.requests
    assert opening["instructions"] == "Be brief" and opening["input"][0] == developer
    # As on the translated path, a chained turn keeps the conversation's system prompt.
    assert chained["instructions"].startswith("Be brief")
    assert [i["role"] for i in chained["input"]] == ["user", "assistant", "user"]


def test_a_chain_sends_the_whole_input_and_never_chatgates_ids(
    gateway: Gateway, upstreams: tuple[ServerThread, ServerThread]
) -> None:
    upstream = _upstream(upstreams[0])
    upstream.enqueue(Reply([text("Hello Ada")]), Reply([text("Your name is Ada")]))
    client = _client(gateway)
    with client.responses.stream(model="gpt-pass", input="My name is Ada") as stream:
        first = stream.get_final_response()
    second = client.responses.create(
        model="gpt-pass", input="What is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    assert second.output_text == "Your name is Ada"
    sent = upstream.requests[1]
    assert [(i["role"], i["type"]) for i in sent["input"]] == [
        ("user", "message"),
        ("assistant", "message"),
        ("user", "message"),
    ]
    assert sent["input"][1]["content"] == [{"type": "output_text", "text": "Hello Ada"}]
    assert sent["store"] is False and "previous_response_id" not in sent
    wire = json.dumps(upstream.requests)
    assert first.id[len("resp_") :] not in wire and second.id[len("resp_") :] not in wire


def test_a_function_call_round_trips_through_the_upstream(
    gateway: Gateway, upstreams: tuple[ServerThread, ServerThread]
) -> None:
    upstream = _upstream(upstreams[0])
    upstream.enqueue(Reply([function_call("lookup", '{"q": "x"}')]), Reply([text("Found it")]))
    client = _client(gateway)
    asked = client.responses.create(model="gpt-pass", input="Look it up", tools=[LOOKUP])
    call = asked.output[0]
    assert call.type == "function_call" and call.arguments == '{"q": "x"}'
    answered = client.responses.create(
        model="gpt-pass",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "x=1"}],
        tools=[LOOKUP],
    )
    assert answered.output_text == "Found it"
    sent = upstream.requests[1]["input"]
    assert [i["type"] for i in sent] == ["message", "function_call", "function_call_output"]
    assert sent[1]["call_id"] == call.call_id and sent[1]["name"] == "lookup"


def test_the_daily_cap_counts_passed_through_requests_exactly(
    make_passing: Callable[..., Gateway], upstreams: tuple[ServerThread, ServerThread]
) -> None:
    gateway = make_passing(default_daily_requests=2)
    client = _client(gateway)
    client.responses.create(model="gpt-pass", input="one")
    with client.responses.stream(model="gpt-pass", input="two") as stream:
        stream.get_final_response()
    with pytest.raises(RateLimitError):
        client.responses.create(model="gpt-pass", input="three")
    assert len(_upstream(upstreams[0]).requests) == 2


def test_usage_rows_carry_the_upstreams_counts_and_their_cost(gateway: Gateway) -> None:
    _client(gateway).responses.create(model="gpt-pass", input="count me")
    (row,) = request_log(gateway, "alice")
    assert (row.model, row.provider, row.status) == ("gpt-pass", "first", "ok")
    assert (row.prompt_tokens, row.completion_tokens) == (11, 7)
    assert row.cost == pytest.approx((11 * 2.0 + 7 * 8.0) / 1_000_000)


def test_a_failure_before_the_first_byte_falls_back_to_the_next_deployment(
    gateway: Gateway, upstreams: tuple[ServerThread, ServerThread]
) -> None:
    first, second = (_upstream(s) for s in upstreams)
    first.enqueue(failure(503))
    second.enqueue(Reply([text("From the second")]))
    with _client(gateway).responses.stream(model="gpt-chain", input="anyone?") as stream:
        response = stream.get_final_response()
    assert response.output_text == "From the second"
    assert len(first.requests) == 1 and len(second.requests) == 1
    assert [r.provider for r in request_log(gateway, "alice")] == ["second"]


def test_an_upstream_error_before_the_first_byte_is_an_openai_error(
    gateway: Gateway, upstreams: tuple[ServerThread, ServerThread], check: Check
) -> None:
    _upstream(upstreams[0]).enqueue(failure(500, "boom"))
    with pytest.raises(openai.InternalServerError) as raised:
        _client(gateway).responses.create(model="gpt-pass", input="hi")
    body = raised.value.response.json()
    assert check("ErrorResponse", body) == [], body
    assert "boom" in body["error"]["message"]
    (row,) = request_log(gateway, "alice")
    assert row.status == "error" and not row.counted


def test_another_users_response_is_not_found(gateway: Gateway) -> None:
    mine = _client(gateway).responses.create(model="gpt-pass", input="private")
    theirs = _client(gateway, "bob")
    with pytest.raises(NotFoundError):
        theirs.responses.retrieve(mine.id)
    with pytest.raises(NotFoundError):
        theirs.responses.create(model="gpt-pass", input="hi", previous_response_id=mine.id)


def test_a_passed_through_response_is_retrieved_with_its_items(
    gateway: Gateway, upstreams: tuple[ServerThread, ServerThread]
) -> None:
    _upstream(upstreams[0]).enqueue(Reply([web_search("q"), text("Answer")]))
    client = _client(gateway)
    created = client.responses.create(
        model="gpt-pass", input="Search", tools=[{"type": "web_search"}]
    )
    gateway.services.responses.runs.drop(created.id)
    stored = client.responses.retrieve(created.id)
    assert [i.type for i in stored.output] == ["web_search_call", "message"]
    assert [i.id for i in stored.output] == [i.id for i in created.output]
    assert stored.output_text == "Answer" and stored.status == "completed"
    items = client.responses.input_items.list(created.id)
    assert [i.content[0].text for i in items.data] == ["Search"]
    client.responses.delete(created.id)
    with pytest.raises(NotFoundError):
        client.responses.retrieve(created.id)


@pytest.mark.parametrize("takes", [True, False])
def test_reasoning_effort_reaches_a_chat_upstream_only_where_it_is_taken(
    make_gateway: Callable[..., Gateway], takes: bool
) -> None:
    server = ServerThread(DemoUpstream(record=True)).start()
    try:
        gateway = make_gateway(
            providers=[
                {
                    "name": "chat",
                    "base_url": server.url + "/v1",
                    "takes_reasoning_effort": takes,
                    "discover_models": False,
                }
            ],
            models=[{"name": "thinker", "deployments": ["chat"], "upstream_name": "demo"}],
            models_refresh_seconds=0,
            conversation_titles=False,  # the one request the upstream gets is the reply's
        )
        _client(gateway).responses.create(
            model="thinker", input="think", reasoning={"effort": "low"}
        )
        (sent,) = server.app.requests
        assert ("reasoning_effort" in sent) is takes
    finally:
        server.stop()


def test_a_failure_after_the_first_output_ends_the_stream_failed(
    gateway: Gateway, upstreams: tuple[ServerThread, ServerThread], check: Check
) -> None:
    first, second = (_upstream(s) for s in upstreams)
    first.enqueue(Reply([text("Half an answer")], fails=True))
    events = _events(_raw_stream(gateway, {"model": "gpt-chain", "input": "go"}))
    assert events[-1]["type"] == "response.failed"
    assert "the model crashed" in events[-1]["response"]["error"]["message"]
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Half an answer"
    for event in events:
        assert check("ResponseStreamEvent", event) == [], event
    assert second.requests == []  # nothing is sent twice once output has gone out
    (row,) = request_log(gateway, "alice")
    assert (row.provider, row.status) == ("first", "error")


def test_a_conversation_continued_through_a_passing_upstream_lists_its_items(
    gateway: Gateway, upstreams: tuple[ServerThread, ServerThread]
) -> None:
    upstream = _upstream(upstreams[0])
    upstream.enqueue(Reply([text("One")]), Reply([text("Two")]))
    client = _client(gateway)
    conversation = client.conversations.create()
    client.responses.create(model="gpt-pass", input="first", conversation=conversation.id)
    client.responses.create(model="gpt-pass", input="second", conversation=conversation.id)
    texts = [
        i.content[0].text
        for i in client.conversations.items.list(conversation.id, order="asc").data
    ]
    assert texts == ["first", "One", "second", "Two"]
    assert [i["role"] for i in upstream.requests[1]["input"]] == ["user", "assistant", "user"]


def test_a_translating_deployment_answers_when_the_passing_one_fails_first(
    make_gateway: Callable[..., Gateway], upstreams: tuple[ServerThread, ServerThread], check: Check
) -> None:
    chat = ServerThread(DemoUpstream(record=True)).start()
    try:
        settings = _settings(*upstreams)
        settings["providers"].append(
            {"name": "chat", "base_url": chat.url + "/v1", "discover_models": False}
        )
        settings["models"].append(
            {"name": "mixed", "deployments": ["first", "chat"], "upstream_name": "demo"}
        )
        gateway = make_gateway(**settings)
        _upstream(upstreams[0]).enqueue(failure(503))
        body = {"model": "mixed", "input": "Say hi", "tools": [LOOKUP, {"type": "web_search"}]}
        streamed = _raw_stream(gateway, body)
        assert streamed.headers["x-chatgate-tools-left-out"] == "web_search"
        events = _events(streamed)
        for event in events:
            assert check(HOSTED[event["type"]], event) == [], event
        assert 'You asked: "Say hi"' in events[-1]["response"]["output_text"]
        assert "messages" in chat.app.requests[-1]  # it was sent Chat Completions
    finally:
        chat.stop()


def test_items_chat_has_no_form_for_reach_a_passing_upstream_as_they_were_sent(
    gateway: Gateway, upstreams: tuple[ServerThread, ServerThread]
) -> None:
    """What Codex CLI replays (store: false, every item with its id, hosted tool calls and
    encrypted reasoning) goes on unchanged instead of being refused."""
    upstream = _upstream(upstreams[0])
    replayed = [
        {"type": "message", "id": "m1", "role": "developer", "content": "Be terse."},
        {"type": "message", "id": "m2", "role": "user", "content": "Weather?"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
        {
            "type": "web_search_call",
            "id": "ws_1",
            "status": "completed",
            "action": {"type": "search", "query": "weather"},
        },
        {"type": "message", "id": "m3", "role": "user", "content": "And tomorrow?"},
    ]
    response = _client(gateway).responses.create(
        model="gpt-pass", input=replayed, store=False, tools=[{"type": "web_search"}]
    )
    assert response.status == "completed" and response.store is False
    assert upstream.requests[0]["input"] == replayed


def test_a_background_response_runs_through_a_passing_upstream(
    gateway: Gateway, upstreams: tuple[ServerThread, ServerThread]
) -> None:
    _upstream(upstreams[0]).enqueue(Reply([web_search("q"), text("Done in the background")]))
    client = _client(gateway)
    queued = client.responses.create(model="gpt-pass", input="Take your time", background=True)
    assert queued.status == "queued"

    def finished() -> bool:
        return client.responses.retrieve(queued.id).status == "completed"

    eventually(finished, "the background response completed")
    done = client.responses.retrieve(queued.id)
    assert done.output_text == "Done in the background"
    assert [i.type for i in done.output] == ["web_search_call", "message"]


def test_a_passed_through_stream_is_resumed_live_and_from_the_stored_response(
    gateway: Gateway, upstreams: tuple[ServerThread, ServerThread], check: Check
) -> None:
    upstream = _upstream(upstreams[0])
    upstream.enqueue(Reply([web_search("q"), text("Found"), function_call("lookup", "{}")]))
    client = _client(gateway)
    created = client.responses.create(
        model="gpt-pass", input="Search", tools=[LOOKUP, {"type": "web_search"}]
    )
    headers = {"Authorization": f"Bearer {gateway.key('alice')}"}
    url = f"{gateway.base_url}/responses/{created.id}?stream=true"
    live = _events(httpx.get(url, headers=headers, timeout=30))
    gateway.services.responses.runs.drop(created.id)
    replayed = _events(httpx.get(url, headers=headers, timeout=30))
    for events in (live, replayed):
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        for event in events:
            assert check(HOSTED[event["type"]], event) == [], event
        final = events[-1]["response"]["output"]
        assert [i["id"] for i in final] == [i.id for i in created.output]
        for event in events:
            if event["type"] == "response.output_item.done":
                assert event["item"]["id"] == final[event["output_index"]]["id"]


def test_an_administrator_switches_a_provider_to_passthrough_while_serving(
    make_gateway: Callable[..., Gateway], upstreams: tuple[ServerThread, ServerThread]
) -> None:
    settings = _settings(*upstreams)
    settings["providers"][0]["responses"] = "translate"
    gateway = make_gateway(**settings)
    gateway.user("root", admin=True)
    upstream = _upstream(upstreams[0])
    admin = httpx.Client(
        base_url=gateway.url + "/api/v1/admin",
        headers={"Authorization": f"Bearer {gateway.key('root')}"},
        timeout=10,
    )
    with admin:
        (listed,) = [p for p in admin.get("/providers").json()["data"] if p["name"] == "first"]
        assert listed["responses"] == "translate" and listed["takes_reasoning_effort"] is True
        base = {k: v for k, v in settings["providers"][0].items() if k != "name"}
        changed = admin.put("/providers/first", json={**base, "responses": "passthrough"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["responses"] == "passthrough"
        refused = admin.put(
            "/providers/azure",
            json={
                "kind": "azure-openai",
                "base_url": "https://x.example",
                "responses": "passthrough",
            },
        )
        assert refused.status_code in (400, 422), refused.text
    _client(gateway).responses.create(model="gpt-pass", input="now passed through")
    assert upstream.paths == ["/v1/responses"]
