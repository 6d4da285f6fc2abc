"""Every object the OpenAI-compatible routes send conforms to OpenAI's published API schema.

The schema is OpenAI's own OpenAPI description (MIT), kept beside the repository in
``../shared/specs/openai-openapi.yaml`` and read from there, never copied in: a run without it
fails. Bodies, every streamed chunk and every error are checked, from the in-process demo model
and from an upstream whose replies chatgate relays, with chatgate's own extra fields
(``conversation_id``, ``message_id``, ``parent_id``), which the schema allows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import orjson
import pytest
import yaml
from faulty_upstream import FaultyUpstream, cut_after, status
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from support import Gateway, ServerThread

from chatgate.demo_upstream import DemoUpstream
from chatgate.settings import Settings

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "openai-openapi.yaml"
SPEC_URI = "urn:openai-openapi"

Check = Callable[[str, Any], list[str]]


def _nullable_as_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true``, which the spec still uses in places, as JSON Schema.

    JSON Schema ignores the keyword, so ``{"type": "object", "nullable": true}`` would refuse
    the ``null`` the spec means to allow.
    """
    if isinstance(node, list):
        return [_nullable_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _nullable_as_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@pytest.fixture(scope="session")
def conforms() -> Check:
    """``conforms(name, obj)``: what is wrong with ``obj`` as the spec's schema ``name``."""
    assert SPEC.is_file(), f"OpenAI's published API description is missing: {SPEC}"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # a safe loader, in C when built
    text = SPEC.read_text(encoding="utf-8")
    spec = _nullable_as_json_schema(yaml.load(text, Loader=loader))  # noqa: S506
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    validators: dict[str, Draft202012Validator] = {}

    def check(name: str, obj: Any) -> list[str]:
        if name not in validators:
            assert name in spec["components"]["schemas"], name
            ref = {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}
            validators[name] = Draft202012Validator(ref, registry=registry)
        errors = validators[name].iter_errors(obj)
        return [_describe(error) for error in errors]

    return check


def _describe(error: jsonschema.ValidationError) -> str:
    deepest = jsonschema.exceptions.best_match([error])
    return f"{error.json_path}: {deepest.message}"


def _events(response: httpx.Response) -> Iterator[Any]:
    """The JSON of every ``data:`` event of a stream, which must end with ``[DONE]``."""
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert data, response.text
    for item in data:
        if item != "[DONE]":
            yield orjson.loads(item)


def _post(gateway: Gateway, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(gateway.url + path, json=body, headers=headers, timeout=30)


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ASK = [{"role": "user", "content": "Say something short."}]
CHATS: dict[str, dict[str, Any]] = {
    "plain": {"messages": ASK},
    "tools": {
        "messages": [{"role": "user", "content": "Use the get_weather tool for Paris."}],
        "tools": [WEATHER],
        "tool_choice": "required",
    },
    "tool-result": {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C."},
        ],
        "tools": [WEATHER],
    },
    "stored": {"messages": ASK, "conversation_id": "new"},
    "usage": {"messages": ASK, "stream_options": {"include_usage": True}},
    "max-tokens": {"messages": ASK, "max_tokens": 2},
}
COMPLETIONS: dict[str, dict[str, Any]] = {
    "plain": {"prompt": "Say this is a test"},
    "several": {"prompt": ["One", "Two"]},
    "usage": {"prompt": "Say this", "stream_options": {"include_usage": True}},
}


def _settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": data_dir, "port": 0, "grpc_port": 0}
    values |= {"demo_chunk_delay": 0.0, "default_daily_requests": None}
    return Settings.load(**values, **overrides)


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Gateway]]:
    """The demo model in process, and served over HTTP by an upstream chatgate relays.

    Started once for the module: these tests only read, and each reply is checked alone.
    """
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


@pytest.fixture(params=["in-process", "relayed"])
def served(request: pytest.FixtureRequest, gateways: dict[str, Gateway]) -> tuple[Gateway, str]:
    gateway = gateways[request.param]
    return gateway, gateway.key("alice")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("case", list(CHATS))
def test_chat_replies_conform(
    served: tuple[Gateway, str], conforms: Check, case: str, stream: bool
) -> None:
    gateway, key = served
    body = {"model": "demo", "stream": stream, **CHATS[case]}
    response = _post(gateway, key, "/v1/chat/completions", body)
    assert response.status_code == 200, response.text
    if not stream:
        reply = response.json()
        assert conforms("CreateChatCompletionResponse", reply) == [], reply
        return
    for chunk in _events(response):
        assert conforms("CreateChatCompletionStreamResponse", chunk) == [], chunk


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("case", list(COMPLETIONS))
def test_text_completions_conform(
    served: tuple[Gateway, str], conforms: Check, case: str, stream: bool
) -> None:
    gateway, key = served
    body = {"model": "demo", "stream": stream, **COMPLETIONS[case]}
    response = _post(gateway, key, "/v1/completions", body)
    assert response.status_code == 200, response.text
    if not stream:
        reply = response.json()
        assert conforms("CreateCompletionResponse", reply) == [], reply
        return
    chunks = list(_events(response))
    assert any(c["choices"] and c["choices"][0]["finish_reason"] for c in chunks), chunks
    for chunk in chunks:
        assert conforms("CreateCompletionResponse", _as_if_finished(chunk)) == [], chunk


def _as_if_finished(chunk: dict[str, Any]) -> dict[str, Any]:
    """A streamed text completion before its last piece, checked as the spec can check it.

    The spec gives streamed chunks the body's schema, whose ``finish_reason`` cannot be null;
    OpenAI's own stream (and every client) has it null until the reply ends, as chatgate does.
    Only that null is let through: everything else in the chunk is checked as it is.
    """
    choices = [
        {**c, "finish_reason": "stop"} if c.get("finish_reason", "") is None else c
        for c in chunk.get("choices", [])
    ]
    return {**chunk, "choices": choices}


def test_model_list_and_models_conform(served: tuple[Gateway, str], conforms: Check) -> None:
    gateway, key = served
    headers = {"Authorization": f"Bearer {key}"}
    listing = httpx.get(gateway.url + "/v1/models", headers=headers).json()
    assert conforms("ListModelsResponse", listing) == [], listing
    assert listing["data"]
    for card in listing["data"]:
        model = httpx.get(f"{gateway.url}/v1/models/{card['id']}", headers=headers).json()
        assert conforms("Model", model) == [], model


def test_embeddings_conform(served: tuple[Gateway, str], conforms: Check) -> None:
    gateway, key = served
    body = {"model": "demo", "input": ["a tree", "a river"], "encoding_format": "float"}
    reply = _post(gateway, key, "/v1/embeddings", body).json()
    assert conforms("CreateEmbeddingResponse", reply) == [], reply


def test_conversations_and_items_conform(served: tuple[Gateway, str], conforms: Check) -> None:
    gateway, key = served
    items = [
        {"type": "message", "role": "user", "content": "Name a tree."},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Oak."}]},
    ]
    made = _post(gateway, key, "/v1/conversations", {"items": items, "metadata": {"title": "T"}})
    conversation = made.json()
    assert conforms("ConversationResource", conversation) == [], conversation
    path = f"/v1/conversations/{conversation['id']}"
    added = _post(gateway, key, path + "/items", {"items": items[:1]}).json()
    assert conforms("ConversationItemList", added) == [], added
    headers = {"Authorization": f"Bearer {key}"}
    listing = httpx.get(gateway.url + path + "/items", headers=headers).json()
    assert conforms("ConversationItemList", listing) == [], listing
    for item in listing["data"]:
        assert conforms("ConversationItem", item) == [], item
    updated = _post(gateway, key, path, {"metadata": {"title": "U"}}).json()
    assert conforms("ConversationResource", updated) == [], updated
    deleted = httpx.delete(gateway.url + path, headers=headers).json()
    assert conforms("DeletedConversationResource", deleted) == [], deleted


# (what, credential, method, path, body, status); the credential is a valid key, none or wrong.
ERRORS: list[tuple[str, str, str, str, Any, int]] = [
    ("no key", "none", "POST", "/v1/chat/completions", {"model": "demo", "messages": ASK}, 401),
    ("bad key", "wrong", "POST", "/v1/chat/completions", {"model": "demo", "messages": ASK}, 401),
    ("unknown model", "key", "POST", "/v1/chat/completions", {"model": "x", "messages": ASK}, 404),
    ("no messages", "key", "POST", "/v1/chat/completions", {"model": "demo"}, 400),
    ("bad role", "key", "POST", "/v1/chat/completions", {"model": "demo", "messages": [{}]}, 400),
    ("not json", "key", "POST", "/v1/chat/completions", b"{oops", 400),
    ("no prompt", "key", "POST", "/v1/completions", {"model": "demo"}, 400),
    ("unknown model card", "key", "GET", "/v1/models/nope", None, 404),
    ("models without key", "none", "GET", "/v1/models", None, 401),
    ("embeddings without key", "none", "POST", "/v1/embeddings", {"model": "demo"}, 401),
    ("no such conversation", "key", "GET", "/v1/conversations/nope", None, 404),
]


@pytest.mark.parametrize(
    ("credential", "method", "path", "body", "code"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
def test_error_bodies_conform(
    gateways: dict[str, Gateway],
    conforms: Check,
    credential: str,
    method: str,
    path: str,
    body: Any,
    code: int,
) -> None:
    gateway = gateways["in-process"]
    keys = {"key": gateway.key("alice"), "wrong": "sk-cg-wrong-key-0000000000", "none": ""}
    headers = {"Authorization": f"Bearer {keys[credential]}"} if keys[credential] else {}
    content = body if isinstance(body, bytes) else None if body is None else orjson.dumps(body)
    response = httpx.request(method, gateway.url + path, content=content, headers=headers)
    assert response.status_code == code, response.text
    assert conforms("ErrorResponse", response.json()) == [], response.text


def test_quota_refusal_conforms(make_gateway: Callable[..., Gateway], conforms: Check) -> None:
    gateway = make_gateway(default_daily_requests=1)
    key = gateway.key("alice")
    body = {"model": "demo", "messages": ASK}
    assert _post(gateway, key, "/v1/chat/completions", body).status_code == 200
    refused = _post(gateway, key, "/v1/chat/completions", body)
    assert refused.status_code == 429
    assert conforms("ErrorResponse", refused.json()) == [], refused.text


@pytest.fixture
def faulty() -> Iterator[FaultyUpstream]:
    upstream = FaultyUpstream().start()
    yield upstream
    upstream.stop()


def test_upstream_failures_conform(
    make_gateway: Callable[..., Gateway], faulty: FaultyUpstream, conforms: Check
) -> None:
    """An upstream's refusal, and a stream it breaks off, reach the client in OpenAI's shape."""
    gateway = make_gateway(openai_base_url=faulty.base_url, openai_api_key="k")
    key = gateway.key("alice")
    body = {"model": "demo", "messages": ASK}
    faulty.enqueue(status(400, "context too long"))
    refused = _post(gateway, key, "/v1/chat/completions", body)
    assert refused.status_code == 400
    assert conforms("ErrorResponse", refused.json()) == [], refused.text
    faulty.enqueue(cut_after(2))
    broken = _post(gateway, key, "/v1/chat/completions", {**body, "stream": True})
    events = list(_events(broken))
    assert "error" in events[-1], events
    for chunk in events[:-1]:
        assert conforms("CreateChatCompletionStreamResponse", chunk) == [], chunk
    assert conforms("ErrorResponse", events[-1]) == [], events[-1]
