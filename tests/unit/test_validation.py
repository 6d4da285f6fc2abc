"""The one check of a chat request's shape: every malformed field is an ``InvalidRequest`` that
names it, every well-formed request passes, and nothing else is ever raised."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatgate.core.errors import InvalidRequest
from chatgate.core.validation import check_chat

USER = {"role": "user", "content": "hi"}


def body(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"model": "demo", "messages": [USER]}
    out.update(changes)
    return out


def messages(*items: Any) -> dict[str, Any]:
    return body(messages=list(items))


GOOD = [
    body(),
    messages({"role": "system", "content": "be brief"}, USER),
    messages({"role": "developer", "content": "be brief"}, USER),
    messages({"role": "user", "content": [{"type": "text", "text": "hi"}]}),
    messages(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}},
                {"type": "file", "file": {"file_id": "f1"}},
            ],
        }
    ),
    messages(
        USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ),
    messages(USER, {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]}),
    messages({"role": "user", "name": "li", "content": "hi"}),
    body(
        temperature=0.7,
        top_p=1,
        n=1,
        max_tokens=5,
        max_completion_tokens=5,
        presence_penalty=-2,
        frequency_penalty=2.0,
        seed=-(2**63),
        stop="Human:",
        stream=True,
        stream_options={"include_usage": True},
        user="u1",
        logit_bias={"50256": -100},
        response_format={"type": "json_object"},
    ),
    body(stop=["a", "b"]),
    body(
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        tool_choice="auto",
    ),
    body(tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="required"),
    body(tool_choice={"type": "function", "function": {"name": "f"}}),
    body(functions=[{"name": "f", "parameters": {}}], function_call={"name": "f"}),
    body(function_call="none", unknown_field={"passes": "through"}),
]

BAD: list[tuple[dict[str, Any], str]] = [
    (body(model=None), "model"),
    (body(model=["demo"]), "model"),
    (body(messages=None), "messages"),
    (body(messages=[]), "messages"),
    (body(messages="hi"), "messages"),
    (messages("hi"), "messages[0]"),
    (messages(None), "messages[0]"),
    (messages({"role": ["user"], "content": "hi"}), "messages[0].role"),
    (messages({"role": {}, "content": "hi"}), "messages[0].role"),
    (messages({"role": "wizard", "content": "hi"}), "messages[0].role"),
    (messages({"content": "hi"}), "messages[0].role"),
    (messages({"role": "user"}), "messages[0].content"),
    (messages({"role": "user", "content": 5}), "messages[0].content"),
    (messages({"role": "user", "content": {"text": "hi"}}), "messages[0].content"),
    (messages({"role": "user", "content": ["hi"]}), "messages[0].content[0]"),
    (messages({"role": "user", "content": [{"text": "hi"}]}), "messages[0].content[0].type"),
    (
        messages({"role": "user", "content": [{"type": "video", "video": "x"}]}),
        "messages[0].content[0].type",
    ),
    (
        messages({"role": "user", "content": [{"type": "text", "text": 5}]}),
        "messages[0].content[0].text",
    ),
    (
        messages({"role": "user", "content": [{"type": "text", "text": None}]}),
        "messages[0].content[0].text",
    ),
    (
        messages({"role": "user", "content": [{"type": "image_url", "image_url": {"url": 1}}]}),
        "messages[0].content[0].image_url.url",
    ),
    (
        messages({"role": "user", "content": [{"type": "image_url"}]}),
        "messages[0].content[0].image_url",
    ),
    (
        messages({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}),
        "messages[0].content[0].input_audio.data",
    ),
    (messages({"role": "user", "content": "hi", "name": 5}), "messages[0].name"),
    (messages({"role": "tool", "content": "sunny"}), "messages[0].tool_call_id"),
    (messages({"role": "tool", "content": "x", "tool_call_id": 3}), "messages[0].tool_call_id"),
    (messages({"role": "assistant", "content": None, "tool_calls": 1}), "messages[0].tool_calls"),
    (
        messages({"role": "assistant", "content": None, "tool_calls": [1]}),
        "messages[0].tool_calls[0]",
    ),
    (
        messages({"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]}),
        "messages[0].tool_calls[0].function.arguments",
    ),
    (
        messages({"role": "assistant", "tool_calls": [{"id": "c", "type": "x", "function": {}}]}),
        "messages[0].tool_calls[0].type",
    ),
    (
        messages({"role": "assistant", "function_call": {"name": 1, "arguments": ""}}),
        "messages[0].function_call.name",
    ),
    (body(tools=[1]), "tools[0]"),
    (body(tools={}), "tools"),
    (body(tools=[{"type": "function"}]), "tools[0].function"),
    (body(tools=[{"type": "retrieval", "function": {"name": "f"}}]), "tools[0].type"),
    (body(tools=[{"type": "function", "function": {"name": 1}}]), "tools[0].function.name"),
    (body(tools=[{"type": "function", "function": {"name": ""}}]), "tools[0].function.name"),
    (
        body(tools=[{"type": "function", "function": {"name": "f", "parameters": []}}]),
        "tools[0].function.parameters",
    ),
    (body(tool_choice="always"), "tool_choice"),
    (body(tool_choice=1), "tool_choice"),
    (body(tool_choice={"type": "function"}), "tool_choice.function"),
    (body(tool_choice={"type": "function", "function": {}}), "tool_choice.function.name"),
    (body(functions=[1]), "functions[0]"),
    (body(function_call=["f"]), "function_call"),
    (body(temperature=3), "temperature"),
    (body(temperature=-0.1), "temperature"),
    (body(temperature="0.5"), "temperature"),
    (body(temperature=True), "temperature"),
    (body(temperature=float("nan")), "temperature"),
    (body(temperature=float("inf")), "temperature"),
    (body(top_p=1.5), "top_p"),
    (body(n=0), "n"),
    (body(n=1.5), "n"),
    (body(max_tokens=0), "max_tokens"),
    (body(max_tokens=2**31), "max_tokens"),
    (body(max_tokens="10"), "max_tokens"),
    (body(max_completion_tokens=-1), "max_completion_tokens"),
    (body(presence_penalty=2.5), "presence_penalty"),
    (body(frequency_penalty=[]), "frequency_penalty"),
    (body(seed=2**64), "seed"),
    (body(top_logprobs=21), "top_logprobs"),
    (body(stop=5), "stop"),
    (body(stop=["a", 5]), "stop"),
    (body(stop=["s"] * 17), "stop"),
    (body(stream="yes"), "stream"),
    (body(logprobs=1), "logprobs"),
    (body(stream_options=[]), "stream_options"),
    (body(response_format="json"), "response_format"),
    (body(logit_bias=[1]), "logit_bias"),
    (body(user=5), "user"),
]


@pytest.mark.parametrize("good", GOOD)
def test_well_formed_requests_pass(good: dict[str, Any]) -> None:
    check_chat(good)


@pytest.mark.parametrize(("bad", "param"), BAD)
def test_each_malformed_field_is_refused_by_name(bad: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_chat(bad)
    assert refused.value.param == param
    assert param in refused.value.message


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    [
        "role",
        "content",
        "type",
        "text",
        "image_url",
        "url",
        "name",
        "tool_calls",
        "tool_call_id",
        "function",
        "arguments",
        "parameters",
    ]
)
SHAPED = st.recursive(
    JSON,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(FIELDS, inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["model", "messages", "tools", "tool_choice", "stop", "temperature", "n"]),
        SHAPED,
    )
)
def test_arbitrary_json_is_accepted_or_refused_clearly_never_crashes(data: dict[str, Any]) -> None:
    try:
        check_chat(data)
    except InvalidRequest as exc:
        assert exc.param and exc.message
