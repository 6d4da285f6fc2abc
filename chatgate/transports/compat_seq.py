"""Reading a seq-protocol request: the fields, their types and the ranges its program allowed.

``openai_parameter: true`` (the default) asks with the program's defaults (temperature 0,
max_tokens 500) whatever else was sent; ``false`` uses the parameters sent, each checked:
temperature 0-1, max_tokens 1-4097, top_p 0-1, penalties 0-2, best_of 0-20 (0: not sent),
stop a non-empty list of strings. Every error names the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatgate.core.errors import InvalidRequest
from chatgate.core.events import ChatRequest, Message
from chatgate.core.validation import check_messages, check_params

DEFAULTS: dict[str, Any] = {"temperature": 0.0, "max_tokens": 500}
_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0, 1),
    "top_p": (0, 1),
    "frequency_penalty": (0, 2),
    "presence_penalty": (0, 2),
}
_ROLES = frozenset(("system", "user", "assistant"))


@dataclass(slots=True)
class SeqRequest:
    seq: str | int
    origin_stream: bool
    request: ChatRequest


def _bad(field: str, rule: str) -> InvalidRequest:
    return InvalidRequest(f"{field}: {rule}", param=field)


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, True)
    if value is None:
        return True
    if not isinstance(value, bool):
        raise _bad(name, "must be true or false")
    return value


def _number(data: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _bad(name, f"must be a number from {low:g} to {high:g}")
    return float(value)


def _integer(data: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(name, f"must be a whole number from {low} to {high}")
    return value


def _params(data: dict[str, Any], kind: str) -> dict[str, Any]:
    params = dict(DEFAULTS)
    for name, (low, high) in _RANGES.items():
        value = _number(data, name, low, high)
        if value is not None:
            params[name] = value
    max_tokens = _integer(data, "max_tokens", 1, 4097)
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    best_of = _integer(data, "best_of", 0, 20)
    if best_of and kind == "completion":
        params["best_of"] = best_of
    stop = data.get("stop")
    if stop is not None:
        if not isinstance(stop, list) or not stop or not all(isinstance(s, str) for s in stop):
            raise _bad("stop", "must be a non-empty list of strings")
        params["stop"] = stop
    return params


def _messages(value: Any) -> list[Message]:
    """The chat shape every transport checks, then this protocol's narrower roles."""
    check_messages(value)
    for i, message in enumerate(value):
        if message["role"] not in _ROLES:
            raise _bad(f"messages[{i}].role", f"must be one of {', '.join(sorted(_ROLES))}")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _optional_id(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise _bad(name, "must be a string id")
    return value


def parse_seq(frame: Any, default_model: str) -> SeqRequest:
    """A decoded frame as a request; ``query`` goes to a completion model, ``messages`` to chat."""
    if not isinstance(frame, dict):
        raise InvalidRequest("The frame must be a JSON object with 'seq' and 'data'.")
    seq = frame.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, str | int) or seq == "":
        raise _bad("seq", "is required: a non-empty string")
    data = frame.get("data")
    if not isinstance(data, dict):
        raise _bad("data", "must be an object")
    model = data.get("model", default_model)
    if not isinstance(model, str) or not model:
        raise _bad("model", "must be a model name")
    messages, query = data.get("messages"), data.get("query")
    if query is not None and not isinstance(query, str):
        raise _bad("query", "must be a string")
    if messages:
        request = ChatRequest(model=model, messages=_messages(messages))
        request.conversation_id = _optional_id(data, "conversation_id")
        request.parent_id = _optional_id(data, "parent_id")
    elif query:
        request = ChatRequest(model=model, kind="completion", prompt=query)
    else:
        raise _bad("query", "query or messages is required")
    origin_stream = _flag(data, "origin_stream")
    use_sent = not _flag(data, "openai_parameter")
    request.params = _params(data, request.kind) if use_sent else dict(DEFAULTS)
    check_params(request.params)
    return SeqRequest(seq, origin_stream, request)
