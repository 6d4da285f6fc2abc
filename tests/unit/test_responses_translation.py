"""A Responses request becomes the chat request a Chat Completions upstream understands."""

from __future__ import annotations

from typing import Any

import pytest

from chatgate.core.errors import InvalidRequest, NotFound
from chatgate.core.responses import answered_calls, chat_params, message_id_of, to_messages

SHELL_LS = {"name": "shell", "arguments": '{"cmd":"ls"}'}


def _said(role: str, kind: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}


def test_codex_style_items_become_chat_messages() -> None:
    items: list[dict[str, Any]] = [
        _said("developer", "input_text", "Be terse."),
        _said("user", "input_text", "List files"),
        {"type": "reasoning", "summary": []},
        _said("assistant", "output_text", "Sure."),
        {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": '{"cmd":"ls"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "a.txt"},
    ]  # fmt: skip
    assert to_messages(items, "System rules") == [
        {"role": "system", "content": "System rules"},
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "List files"},
        {
            "role": "assistant",
            "content": "Sure.",
            "tool_calls": [{"id": "c1", "type": "function", "function": SHELL_LS}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "a.txt"},
    ]  # fmt: skip


def test_an_image_stays_a_part_of_the_user_message() -> None:
    content = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
    ]
    [message] = to_messages([{"role": "user", "content": content}], None)
    assert message["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAAA"},
    }


@pytest.mark.parametrize(
    "raw_input",
    [
        None,
        [],
        7,
        ["text"],
        [{"type": "mystery"}],
        [{"role": "robot", "content": "hi"}],
        [{"role": "user", "content": None}],
        [{"role": "user", "content": [{"type": "input_audio"}]}],
        [{"type": "function_call", "name": "f"}],
        [{"type": "function_call_output", "output": "x"}],
        [{"type": "function_call_output", "call_id": "c", "output": {"no": "parts"}}],
    ],
)
def test_input_chatgate_cannot_send_is_a_clear_error(raw_input: Any) -> None:
    with pytest.raises(InvalidRequest):
        to_messages(raw_input, None)


def test_parameters_are_renamed_for_chat_and_hosted_tools_are_left_out() -> None:
    body = {
        "max_output_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "tools": [
            {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True},
            {"type": "web_search"},
        ],
        "tool_choice": {"type": "function", "name": "f"},
        "parallel_tool_calls": False,
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}},
        "metadata": {"run": "1"},
    }
    params, left_out = chat_params(body)
    assert params == {
        "max_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object"}, "strict": True},
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "n", "schema": {"type": "object"}},
        },
    }
    assert left_out == ["web_search"]


def test_only_hosted_tools_send_no_tools_at_all() -> None:
    params, left_out = chat_params({"tools": [{"type": "web_search"}], "tool_choice": "required"})
    assert params == {} and left_out == ["web_search"]


def test_a_tool_output_without_its_call_gets_the_earlier_responses_call() -> None:
    calls = [{"call_id": "c1", "name": "f", "arguments": "{}"}]
    messages = [{"role": "tool", "tool_call_id": "c1", "content": "out"}]
    fixed = answered_calls(messages, calls)
    assert fixed[0]["tool_calls"][0]["id"] == "c1" and fixed[1] == messages[0]
    replayed: list[dict[str, Any]] = [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
        *messages,
    ]
    assert answered_calls(replayed, calls) == replayed


@pytest.mark.parametrize("bad", ["msg_1", "resp", "x" * 100, "resp_" + "a" * 90])
def test_an_id_that_names_no_response_is_not_found(bad: str) -> None:
    with pytest.raises(NotFound):
        message_id_of(bad)
