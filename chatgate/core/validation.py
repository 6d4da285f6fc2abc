"""The shape of a chat request, checked once at the edge, the same way for every transport.

A request that reaches the core has messages whose roles are known strings, whose content is a
string or a list of well-formed parts, tools that are functions with a name, and parameters of
the right type inside their ranges. Anything else is an ``InvalidRequest`` that names the field
(``param``), so a client's mistake is a clear 400-style answer on every transport, never a crash
further in. Unknown top-level fields pass through untouched: the upstream may know them.

The checks are plain loops over the decoded JSON, cheap enough for the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from chatgate.core.errors import InvalidRequest

ROLES = frozenset(("system", "developer", "user", "assistant", "tool", "function"))
# Roles whose message may be just a role and a string content.
_PLAIN_ROLES = frozenset(("system", "developer", "user", "assistant"))
TOOL_CHOICES = frozenset(("none", "auto", "required"))
FUNCTION_CALL_CHOICES = frozenset(("none", "auto"))
MAX_STOP = 16
MAX_INT = 2**31 - 1
MAX_SEED = 2**63 - 1

# Numeric parameters: (low, high, whole numbers only).
NUMBERS: dict[str, tuple[float, float, bool]] = {
    "temperature": (0, 2, False),
    "top_p": (0, 1, False),
    "presence_penalty": (-2, 2, False),
    "frequency_penalty": (-2, 2, False),
    "n": (1, 128, True),
    "max_tokens": (1, MAX_INT, True),
    "max_completion_tokens": (1, MAX_INT, True),
    "best_of": (1, 20, True),
    "top_logprobs": (0, 20, True),
    "seed": (-MAX_SEED - 1, MAX_SEED, True),
}
FLAGS = ("stream", "logprobs", "parallel_tool_calls", "store", "echo")
OBJECTS = ("stream_options", "response_format", "metadata", "logit_bias")
STRINGS = ("user", "reasoning_effort", "service_tier")


def _bad(param: str, rule: str) -> InvalidRequest:
    return InvalidRequest(f"'{param}' {rule}", param=param)


def _string(value: Any, param: str, *, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str):
        raise _bad(param, "must be a string.")


def _object(value: Any, param: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _bad(param, "must be an object.")
    return value


# ---- messages -------------------------------------------------------------------------------


def _image_url(part: Mapping[str, Any], param: str) -> None:
    image = part.get("image_url")
    if isinstance(image, str):
        return
    image = _object(image, f"{param}.image_url")
    _string(image.get("url"), f"{param}.image_url.url")
    _string(image.get("detail"), f"{param}.image_url.detail", required=False)


def _input_audio(part: Mapping[str, Any], param: str) -> None:
    audio = _object(part.get("input_audio"), f"{param}.input_audio")
    _string(audio.get("data"), f"{param}.input_audio.data")
    _string(audio.get("format"), f"{param}.input_audio.format")


def _file(part: Mapping[str, Any], param: str) -> None:
    found = _object(part.get("file"), f"{param}.file")
    for name in ("file_id", "file_data", "filename"):
        _string(found.get(name), f"{param}.file.{name}", required=False)


_PARTS: dict[str, Callable[[Mapping[str, Any], str], None]] = {
    "text": lambda part, param: _string(part.get("text"), f"{param}.text"),
    "refusal": lambda part, param: _string(part.get("refusal"), f"{param}.refusal"),
    "image_url": _image_url,
    "input_audio": _input_audio,
    "file": _file,
}


def _content(content: Any, param: str, *, required: bool) -> None:
    if isinstance(content, str):
        return
    if content is None:
        if required:
            raise _bad(param, "is required: a string or an array of content parts.")
        return
    if not isinstance(content, list):
        raise _bad(param, "must be a string or an array of content parts.")
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        if not isinstance(part, dict):
            raise _bad(where, "must be an object with a 'type'.")
        kind = part.get("type")
        check = _PARTS.get(kind) if isinstance(kind, str) else None
        if check is None:
            kinds = ", ".join(sorted(_PARTS))
            raise _bad(f"{where}.type", f"must be one of {kinds}.")
        check(part, where)


def _tool_call(call: Any, param: str) -> None:
    call = _object(call, param)
    _string(call.get("id"), f"{param}.id")
    if call.get("type", "function") != "function":
        raise _bad(f"{param}.type", "must be 'function'.")
    function = _object(call.get("function"), f"{param}.function")
    _string(function.get("name"), f"{param}.function.name")
    _string(function.get("arguments"), f"{param}.function.arguments")


def _message(message: Any, param: str) -> None:
    if not isinstance(message, dict):
        raise _bad(param, "must be an object with a 'role' and a 'content'.")
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise _bad(f"{param}.role", f"must be one of {', '.join(sorted(ROLES))}.")
    calls = message.get("tool_calls")
    may_be_empty = role == "assistant"
    _content(message.get("content"), f"{param}.content", required=not may_be_empty)
    _string(message.get("name"), f"{param}.name", required=False)
    _string(message.get("tool_call_id"), f"{param}.tool_call_id", required=role == "tool")
    if calls is not None:
        if not isinstance(calls, list):
            raise _bad(f"{param}.tool_calls", "must be an array of tool calls.")
        for k, call in enumerate(calls):
            _tool_call(call, f"{param}.tool_calls[{k}]")
    function_call = message.get("function_call")
    if function_call is not None:
        function_call = _object(function_call, f"{param}.function_call")
        _string(function_call.get("name"), f"{param}.function_call.name")
        _string(function_call.get("arguments"), f"{param}.function_call.arguments")


def check_messages(messages: Any, param: str = "messages") -> None:
    """A non-empty array of well-formed messages."""
    if not isinstance(messages, list) or not messages:
        raise _bad(param, "must be a non-empty array of messages.")
    for i, message in enumerate(messages):
        # The common case, checked at the cost of two lookups: {"role": …, "content": "…"}.
        if (
            type(message) is dict
            and len(message) == 2
            and type(message.get("content")) is str
            and type(role := message.get("role")) is str
            and role in _PLAIN_ROLES
        ):
            continue
        _message(message, f"{param}[{i}]")


# ---- tools ----------------------------------------------------------------------------------


def _function(function: Any, param: str) -> None:
    function = _object(function, param)
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(f"{param}.name", "must be a non-empty string.")
    _string(function.get("description"), f"{param}.description", required=False)
    parameters = function.get("parameters")
    if parameters is not None:
        _object(parameters, f"{param}.parameters")


def _tools(tools: Any) -> None:
    if not isinstance(tools, list):
        raise _bad("tools", "must be an array of tools.")
    for i, tool in enumerate(tools):
        tool = _object(tool, f"tools[{i}]")
        if tool.get("type") != "function":
            raise _bad(f"tools[{i}].type", "must be 'function'.")
        _function(tool.get("function"), f"tools[{i}].function")


def _named_choice(choice: Any, param: str, words: frozenset[str], nested: bool) -> None:
    if isinstance(choice, str):
        if choice not in words:
            raise _bad(param, f"must be one of {', '.join(sorted(words))}, or name a function.")
        return
    choice = _object(choice, param)
    if nested:
        if choice.get("type") != "function":
            raise _bad(f"{param}.type", "must be 'function'.")
        choice = _object(choice.get("function"), f"{param}.function")
        param = f"{param}.function"
    name = choice.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(f"{param}.name", "must be a non-empty string.")


# ---- parameters -----------------------------------------------------------------------------


def _number(value: Any, name: str, low: float, high: float, whole: bool) -> None:
    ok = isinstance(value, int) or (not whole and isinstance(value, float))
    if not ok or isinstance(value, bool) or not low <= value <= high:
        kind = "an integer" if whole else "a number"
        raise _bad(name, f"must be {kind} from {low:g} to {high:g}.")


def _stop(stop: Any) -> None:
    if isinstance(stop, str):
        return
    if (
        not isinstance(stop, list)
        or len(stop) > MAX_STOP
        or not all(isinstance(s, str) for s in stop)
    ):
        raise _bad("stop", f"must be a string or an array of at most {MAX_STOP} strings.")


def _flag(value: Any, name: str) -> None:
    if not isinstance(value, bool):
        raise _bad(name, "must be true or false.")


def _numeric(low: float, high: float, whole: bool) -> Callable[[Any, str], None]:
    return lambda value, name: _number(value, name, low, high, whole)


def _functions(functions: Any, name: str) -> None:
    if not isinstance(functions, list):
        raise _bad(name, "must be an array of functions.")
    for i, function in enumerate(functions):
        _function(function, f"{name}[{i}]")


_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    **{name: _numeric(*bounds) for name, bounds in NUMBERS.items()},
    **dict.fromkeys(FLAGS, _flag),
    **dict.fromkeys(OBJECTS, _object),
    **dict.fromkeys(STRINGS, _string),
    "stop": lambda value, _: _stop(value),
    "tools": lambda value, _: _tools(value),
    "tool_choice": lambda value, name: _named_choice(value, name, TOOL_CHOICES, nested=True),
    "functions": _functions,
    "function_call": lambda value, name: _named_choice(
        value, name, FUNCTION_CALL_CHOICES, nested=False
    ),
}


def check_params(body: Mapping[str, Any]) -> None:
    """The OpenAI parameters a request carries: types and ranges. Only the fields present are
    looked at, so a plain request costs a lookup per field."""
    for name, value in body.items():
        check = _CHECKS.get(name)
        if check is not None and value is not None:
            check(value, name)


def check_chat(body: Mapping[str, Any]) -> None:
    """A whole chat request body (``/v1/chat/completions`` and every transport that speaks it):
    the model, the messages and the parameters. Raises ``InvalidRequest`` naming the field."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", param="model")
    check_messages(body.get("messages"))
    check_params(body)
