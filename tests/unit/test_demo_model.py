from __future__ import annotations

import pytest

from chatgate.core.errors import InvalidRequest
from chatgate.providers.base import UpstreamCall
from chatgate.providers.demo import DemoProvider, plan


def chat(content: str, **extra: object) -> dict[str, object]:
    return {"model": "demo", "messages": [{"role": "user", "content": content}], **extra}


def test_reply_is_markdown_with_a_list_and_a_code_block_mentioning_the_question() -> None:
    reply = plan(chat("How do trees grow?"))
    assert "How do trees grow?" in reply.text
    assert "\n1. " in reply.text and "```python" in reply.text
    assert reply.finish_reason == "stop"


def test_reply_is_deterministic() -> None:
    assert plan(chat("same")).pieces == plan(chat("same")).pieces


def test_max_tokens_cuts_with_length() -> None:
    reply = plan(chat("hi", max_tokens=3))
    assert len(reply.pieces) == 3 and reply.finish_reason == "length"
    assert reply.usage.completion_tokens == 3


def test_stop_sequence_cuts_before_it() -> None:
    reply = plan(chat("hi", stop=["**demo**"]))
    assert "**demo**" not in reply.text and reply.finish_reason == "stop"


def test_invalid_stop_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        plan(chat("hi", stop=[1]))


LOOKUP = {"type": "function", "function": {"name": "lookup"}}
CLOCK = {"type": "function", "function": {"name": "get_time"}}


@pytest.mark.parametrize(
    ("question", "extra", "called"),
    [
        ("What is the weather?", {}, None),
        ("What is the weather?", {"tool_choice": "auto"}, None),
        ("Tell me about toolboxes", {}, None),
        ("Please use a tool for the weather", {}, "lookup"),
        ("Which TOOLS do you have?", {}, "lookup"),
        ("用工具查一下天气", {}, "lookup"),
        ("What does get_time say?", {}, "get_time"),
        ("Lookup the weather", {}, "lookup"),
        ("What is the weather?", {"tool_choice": "required"}, "lookup"),
        ("What time is it? get_time", {"tool_choice": "required"}, "get_time"),
        (
            "What is the weather?",
            {"tool_choice": {"type": "function", "function": {"name": "get_time"}}},
            "get_time",
        ),
        ("Use the lookup tool", {"tool_choice": "none"}, None),
    ],
)
def test_a_tool_is_called_only_when_required_or_asked_for(
    question: str, extra: dict[str, object], called: str | None
) -> None:
    reply = plan(chat(question, tools=[LOOKUP, CLOCK], **extra))
    if called is None:
        assert reply.tool_calls == [] and reply.finish_reason == "stop"
        assert reply.text.startswith("You asked")
    else:
        assert reply.finish_reason == "tool_calls"
        assert [c["function"]["name"] for c in reply.tool_calls] == [called]


def test_tool_is_called_then_its_result_is_answered() -> None:
    call = plan(chat("weather, with the lookup tool", tools=[LOOKUP]))
    assert call.finish_reason == "tool_calls" and call.tool_calls[0]["function"]["name"] == "lookup"
    body = chat("weather, with the lookup tool", tools=[LOOKUP])
    body["messages"] = [*body["messages"], {"role": "tool", "content": "sunny"}]  # type: ignore[list-item]
    assert "sunny" in plan(body).text


@pytest.mark.parametrize(
    ("question", "counts"),
    [
        ("Hi", "1 word and 2 characters"),
        ("a", "1 word and 1 character"),
        ("two words", "2 words and 9 characters"),
        ("", "0 words and 0 characters"),
    ],
)
def test_the_reply_counts_words_in_good_english(question: str, counts: str) -> None:
    assert f"Your question has {counts}." in plan(chat(question)).text


async def test_provider_streams_word_by_word_and_reports_usage_last() -> None:
    provider = DemoProvider()
    pieces = [p async for p in provider.stream(UpstreamCall(chat("hello", stream=True)))]
    assert len(pieces) > 20
    assert pieces[-1].finish_reason == "stop" and pieces[-1].usage is not None
    assert all(p.usage is None for p in pieces[:-1])
