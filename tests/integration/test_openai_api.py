"""The official ``openai`` package against a live chatgate, in front of the in-process demo
model and in front of ``demo-upstream`` over real HTTP."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from sqlalchemy import select
from support import Gateway

from chatgate.store.tables import RequestLog


@pytest.fixture(params=["in-process", "over-http"])
def any_gateway(request: pytest.FixtureRequest) -> Gateway:
    name = "gateway" if request.param == "in-process" else "proxied_gateway"
    gateway: Gateway = request.getfixturevalue(name)
    return gateway


def client(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)


def request_log(gateway: Gateway) -> list[RequestLog]:
    gateway.flush()

    async def rows() -> list[RequestLog]:
        async with gateway.services.db.session() as session:
            return list((await session.scalars(select(RequestLog).order_by(RequestLog.id))).all())

    return gateway.run(rows())


def test_non_streaming_reply_mentions_the_question(any_gateway: Gateway) -> None:
    api = client(any_gateway, any_gateway.key("alice"))
    reply = api.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "What is a tree?"}]
    )
    assert reply.choices[0].finish_reason == "stop"
    assert "What is a tree?" in (reply.choices[0].message.content or "")
    assert reply.usage is not None and reply.usage.completion_tokens > 10
    [row] = request_log(any_gateway)
    assert (row.status, row.model, row.counted) == ("ok", "demo", True)
    assert row.completion_tokens == reply.usage.completion_tokens


def test_streaming_reply_arrives_in_chunks_and_ends_cleanly(any_gateway: Gateway) -> None:
    api = client(any_gateway, any_gateway.key("alice"))
    stream = api.chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "Stream to me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    usage = [c.usage for c in chunks if c.usage]
    assert len(chunks) > 20
    assert "Stream to me" in text and "```python" in text
    assert finishes == ["stop"]
    assert usage and usage[-1].completion_tokens > 10


def test_usage_chunk_is_not_sent_unless_asked_for(any_gateway: Gateway) -> None:
    api = client(any_gateway, any_gateway.key("alice"))
    chunks = list(
        api.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_max_tokens_cuts_the_reply_with_finish_reason_length(any_gateway: Gateway) -> None:
    api = client(any_gateway, any_gateway.key("alice"))
    reply = api.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "long please"}], max_tokens=4
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 4


def test_stop_sequence_ends_the_reply_before_it(any_gateway: Gateway) -> None:
    api = client(any_gateway, any_gateway.key("alice"))
    reply = api.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "hi"}], stop=["demo"]
    )
    content = reply.choices[0].message.content or ""
    assert "demo" not in content and content.startswith("You asked")


def test_tool_calls_are_streamed(any_gateway: Gateway) -> None:
    api = client(any_gateway, any_gateway.key("alice"))
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    chunks = list(
        api.chat.completions.create(
            model="demo",
            messages=[{"role": "user", "content": "weather, with the lookup tool"}],
            tools=tools,
            stream=True,
        )
    )
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls and calls[0].function.name == "lookup"
    assert "weather" in (calls[0].function.arguments or "")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_legacy_completions_work_streamed_and_not(any_gateway: Gateway) -> None:
    api = client(any_gateway, any_gateway.key("alice"))
    whole = api.completions.create(model="demo", prompt="Once upon a time", max_tokens=6)
    assert whole.choices[0].finish_reason == "length"
    assert whole.choices[0].text.startswith("You asked")
    pieces = list(api.completions.create(model="demo", prompt="Once", stream=True, max_tokens=5))
    assert "".join(p.choices[0].text for p in pieces if p.choices).startswith("You asked")


def test_models_are_listed(any_gateway: Gateway) -> None:
    api = client(any_gateway, any_gateway.key("alice"))
    assert [m.id for m in api.models.list()] == ["demo"]
    assert api.models.retrieve("demo").id == "demo"


def test_bad_key_gets_authentication_error(any_gateway: Gateway) -> None:
    api = client(any_gateway, "sk-cg-not-a-real-key")
    with pytest.raises(openai.AuthenticationError) as info:
        api.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "invalid_api_key"


def test_unknown_model_gets_not_found(any_gateway: Gateway) -> None:
    api = client(any_gateway, any_gateway.key("alice"))
    with pytest.raises(openai.NotFoundError) as info:
        api.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"


def test_revoked_key_stops_working_at_once(gateway: Gateway) -> None:
    key = gateway.key("alice")
    api = client(gateway, key)
    api.models.list()
    [info] = gateway.run(gateway.services.accounts.list_keys())
    gateway.run(gateway.services.accounts.revoke_key(info.id))
    with pytest.raises(openai.AuthenticationError):
        api.models.list()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "demo"}, "messages"),
        ({"model": "demo", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "demo", "messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role"),
        ({"model": "demo", "messages": [{}]}, "messages[0].role"),
        (
            {
                "model": "demo",
                "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}],
            },
            "messages[0].content[0].text",
        ),
        (
            {"model": "demo", "messages": [{"role": "user", "content": "x"}], "tools": [1]},
            "tools[0]",
        ),
        ({"model": "demo", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "demo", "messages": [{"role": "user"}], "stream": "yes"}, "stream"),
        ({"model": "demo", "messages": [{"role": "user"}], "max_tokens": 0}, "max_tokens"),
    ],
)
def test_invalid_bodies_get_openai_shaped_400(gateway: Gateway, body: dict, param: str) -> None:
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {gateway.key('alice')}"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert error["message"]


def test_non_json_body_gets_400_not_a_traceback(gateway: Gateway) -> None:
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {gateway.key('alice')}"},
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


def test_unreachable_upstream_gives_a_quick_502(make_gateway) -> None:  # type: ignore[no-untyped-def]
    from support import free_port

    gateway = make_gateway(
        openai_base_url=f"http://127.0.0.1:{free_port()}/v1",
        openai_api_key="k",
        models=[{"name": "gpt-x", "deployments": ["openai"]}],
    )
    api = client(gateway, gateway.key("alice"))
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        api.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502
    assert time.monotonic() - started < 5
    [row] = request_log(gateway)
    assert (row.status, row.error_code, row.counted) == ("error", "upstream_unavailable", False)


def test_health_and_readiness(gateway: Gateway) -> None:
    assert httpx.get(gateway.url + "/healthz").json()["status"] == "ok"
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


def test_metrics_count_every_request_and_its_tokens(gateway: Gateway) -> None:
    api = client(gateway, gateway.key("counted"))
    for _ in range(3):
        api.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Hi"}])
    text = httpx.get(gateway.url + "/metrics").text
    assert 'chatgate_requests_total{model="demo",status="ok"} 3.0' in text
    [prompt] = [line for line in text.splitlines() if line.startswith("chatgate_tokens_total")][:1]
    assert 'direction="prompt"' in prompt and float(prompt.split()[-1]) > 0
