"""Every Responses object and streamed event chatgate sends conforms to OpenAI's published
schema (the same description and checker as ``test_openai_conformance.py``), from the in-process
demo model and from an upstream whose Chat Completions chatgate translates."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from faulty_upstream import FaultyUpstream, cut_after, status
from support import Gateway, ServerThread
from test_openai_conformance import Check, conforms  # noqa: F401  (the shared fixture)
from upstream_rig import eventually

from chatgate.demo_upstream import DemoUpstream

LOOKUP = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
CASES: dict[str, dict[str, Any]] = {
    "text": {"input": "Say something short.", "instructions": "Be brief."},
    "items": {
        "input": [
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]},
            {"role": "user", "content": "Again?"},
        ]
    },
    "tool-call": {
        "input": "hi",
        "tools": [LOOKUP, {"type": "web_search"}],
        "tool_choice": "required",
    },
    "tool-result": {
        "input": [
            {"role": "user", "content": "Look it up"},
            {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "found"},
        ],
        "tools": [LOOKUP],
    },
    "json": {
        "input": "A JSON object, please.",
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
        "metadata": {"run": "1"},
    },
    "not-stored": {"input": "hi", "store": False},
    "namespace-call": {
        "input": "hi",
        "tools": [{"type": "namespace", "name": "ns", "description": "d", "tools": [LOOKUP]}],
        "tool_choice": "required",
    },
    "codex-hints": {
        "input": [{"type": "message", "id": "m1", "role": "user", "content": "hi"}],
        "tools": [
            LOOKUP,
            {"type": "web_search"},
            {"type": "namespace", "name": "ns", "description": "d", "tools": [LOOKUP]},
        ],
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "k",
        "client_metadata": {"originator": "codex"},
        "truncation": "auto",
        "store": False,
    },
    "max-tokens": {"input": "hi", "max_output_tokens": 2},
}


EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedEvent",
    "response.in_progress": "ResponseInProgressEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent",
    "response.output_text.done": "ResponseTextDoneEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
    "response.completed": "ResponseCompletedEvent",
    "response.incomplete": "ResponseIncompleteEvent",
    "response.failed": "ResponseFailedEvent",
    "response.queued": "ResponseQueuedEvent",
}
"""The schema of each event chatgate sends, for errors that name the field at fault."""


def _post(gateway: Gateway, key: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(gateway.base_url + "/responses", json=body, headers=headers, timeout=30)


def _get(gateway: Gateway, key: str, path: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.get(gateway.base_url + path, headers=headers, timeout=30)


def _events(response: httpx.Response) -> list[Any]:
    """Every event of a stream; each ``event:`` line names its ``data``'s type."""
    names = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    data = [orjson.loads(line[6:]) for line in response.text.splitlines() if line[:6] == "data: "]
    assert names == [d["type"] for d in data], response.text
    return data


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Gateway]]:
    from test_openai_conformance import _settings

    upstream = ServerThread(DemoUpstream()).start()
    relayed = _settings(
        tmp_path_factory.mktemp("relayed"),
        openai_base_url=upstream.url + "/v1",
        openai_api_key="upstream-key",
    )
    started = {
        "in-process": Gateway(_settings(tmp_path_factory.mktemp("in-process"))).start(),
        "relayed": Gateway(relayed).start(),
    }
    yield started
    for gateway in started.values():
        gateway.stop()
    upstream.stop()


@pytest.fixture
def check(request: pytest.FixtureRequest) -> Check:
    """The shared schema checker (``conforms`` of ``test_openai_conformance.py``)."""
    checker: Check = request.getfixturevalue("conforms")
    return checker


@pytest.fixture(params=["in-process", "relayed"])
def served(request: pytest.FixtureRequest, gateways: dict[str, Gateway]) -> tuple[Gateway, str]:
    gateway = gateways[request.param]
    return gateway, gateway.key("alice")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("case", list(CASES))
def test_responses_and_their_events_conform(
    served: tuple[Gateway, str], check: Check, case: str, stream: bool
) -> None:
    gateway, key = served
    response = _post(gateway, key, {"model": "demo", "stream": stream, **CASES[case]})
    assert response.status_code == 200, response.text
    if not stream:
        assert check("Response", response.json()) == [], response.text
        return
    events = _events(response)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events:
        assert check(EVENT_SCHEMAS[event["type"]], event) == [], event
        assert check("ResponseStreamEvent", event) == [], event
    assert events[-1]["type"] in ("response.completed", "response.incomplete")


def test_stored_responses_and_their_items_conform(
    served: tuple[Gateway, str], check: Check
) -> None:
    gateway, key = served
    first = _post(gateway, key, {"model": "demo", "input": "first"}).json()
    body = {"model": "demo", "input": "second", "previous_response_id": first["id"]}
    second = _post(gateway, key, body).json()
    assert check("Response", second) == [], second
    retrieved = _get(gateway, key, f"/responses/{second['id']}")
    assert check("Response", retrieved.json()) == [], retrieved.text
    items = _get(gateway, key, f"/responses/{second['id']}/input_items")
    assert check("ResponseItemList", items.json()) == [], items.text
    assert len(items.json()["data"]) == 3
    missing = _get(gateway, key, "/responses/resp_nothing")
    assert missing.status_code == 404
    assert check("ErrorResponse", missing.json()) == [], missing.text
    deleted = httpx.delete(
        gateway.base_url + f"/responses/{second['id']}",
        headers={"Authorization": f"Bearer {key}"},
    )
    # The spec describes no deletion answer for responses; it has the shape of the others.
    assert check("DeleteModelResponse", {**deleted.json(), "object": "model"}) == []
    assert _get(gateway, key, f"/responses/{second['id']}").status_code == 404


@pytest.fixture
def faulty() -> Iterator[FaultyUpstream]:
    upstream = FaultyUpstream().start()
    yield upstream
    upstream.stop()


def test_a_stream_the_upstream_breaks_off_ends_failed_and_conforms(
    make_gateway: Callable[..., Gateway], faulty: FaultyUpstream, check: Check
) -> None:
    gateway = make_gateway(openai_base_url=faulty.base_url, openai_api_key="k")
    faulty.enqueue(status(400, "context too long"))
    refused = _post(gateway, gateway.key("alice"), {"model": "demo", "input": "hi", "stream": True})
    assert refused.status_code == 400
    assert check("ErrorResponse", refused.json()) == [], refused.text
    faulty.enqueue(cut_after(2))
    response = _post(
        gateway, gateway.key("alice"), {"model": "demo", "input": "hi", "stream": True}
    )
    events = _events(response)
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["status"] == "failed"
    for event in events:
        assert check("ResponseStreamEvent", event) == [], event


def _check_events(check: Check, events: list[Any]) -> None:
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events:
        assert check(EVENT_SCHEMAS[event["type"]], event) == [], event
        assert check("ResponseStreamEvent", event) == [], event


def test_resumed_and_replayed_streams_conform(served: tuple[Gateway, str], check: Check) -> None:
    """A retrieve with stream=true, from the events kept of a recent response and made again
    from the stored response once they are gone."""
    gateway, key = served
    body = {"model": "demo", "input": "hi", "tools": [LOOKUP], "tool_choice": "required"}
    for extra in ({}, {"input": "Say something", "tools": []}):
        created = _post(gateway, key, {**body, **extra, "metadata": {"a": "b"}}).json()
        live = _events(_get(gateway, key, f"/responses/{created['id']}?stream=true"))
        _check_events(check, live)
        gateway.services.responses.runs.drop(created["id"])
        replayed = _events(_get(gateway, key, f"/responses/{created['id']}?stream=true"))
        _check_events(check, replayed)
        assert replayed[-1]["response"]["output"] == created["output"]
        after = _get(gateway, key, f"/responses/{created['id']}?stream=true&starting_after=2")
        assert _events(after)[0]["sequence_number"] == 3


def test_background_responses_and_their_events_conform(
    served: tuple[Gateway, str], check: Check
) -> None:
    gateway, key = served
    queued = _post(gateway, key, {"model": "demo", "input": "hi", "background": True}).json()
    assert check("Response", queued) == [], queued
    assert queued["status"] == "queued" and queued["background"] is True

    def finished() -> bool:
        status: str = _get(gateway, key, f"/responses/{queued['id']}").json()["status"]
        return status == "completed"

    eventually(finished, "the background response completed")
    done = _get(gateway, key, f"/responses/{queued['id']}").json()
    assert check("Response", done) == [], done
    cancelled = httpx.post(
        gateway.base_url + f"/responses/{queued['id']}/cancel",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert check("Response", cancelled.json()) == [], cancelled.text
    streamed = _post(
        gateway, key, {"model": "demo", "input": "hi", "background": True, "stream": True}
    )
    events = _events(streamed)
    assert [e["type"] for e in events[:3]] == [
        "response.created",
        "response.queued",
        "response.in_progress",
    ]
    _check_events(check, events)
