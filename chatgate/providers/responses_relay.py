"""Passing a Responses request through to an upstream that speaks the Responses API itself.

A provider configured with ``responses = "passthrough"`` gets ``POST {base}/responses`` instead
of the Chat Completions a Responses request is otherwise translated to. The request still goes
through the core like any chat (quota, routing with retries and fallbacks, usage, the stored
reply): the transport puts a ``PassthroughSpec`` in the chat parameters under ``SPEC_KEY``, the
router takes it out, and a deployment that passes through gets the Responses body it describes
(``upstream_body``) while any other deployment of the same model gets the translated chat.

The upstream keeps no state: it is always sent ``store: false`` and the whole input, the
history included, rebuilt by chatgate from its own conversation tree (the chat messages the
core built are turned back into input items). Chatgate's response ids never reach it and its
ids never reach a client, so no user can name another user's upstream state, a chain works
the same whichever deployment answered each turn, and deleting a response in chatgate leaves
nothing behind upstream. Mapping ids per user instead would keep the upstream's copy of every
exchange, tie a chain to the one upstream that holds it (no fallback) and make a deleted
response live on there.

The upstream's events are parsed here for what accounting needs (text, finish, usage) and
handed on, parsed, in ``Delta.extra[EVENTS]``; the transport renumbers them and gives their
items chatgate's ids (``core/responses_passthrough.py``). Its ``response.created`` and
``response.in_progress`` are not handed on (chatgate sent its own), so nothing counts as
started, and a failure may still fall back, until the upstream's first real output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from chatgate.core.errors import UpstreamError
from chatgate.core.events import Delta, Message, Usage
from chatgate.providers.base import Provider, UpstreamCall
from chatgate.providers.openai_compat import (
    MAX_TOKENS,
    OpenAICompatProvider,
    _BadLine,
    _keep_upstream_kind,
    _Malformed,
)

if TYPE_CHECKING:
    from chatgate.providers.router import ModelRoute

SPEC_KEY = "__chatgate_responses__"
"""Where a Responses request's pass-through spec rides in ``ChatRequest.params``; the router
takes it out before any provider sees the body."""
EVENTS = "responses_events"
"""The key of ``Delta.extra`` that holds the upstream's own Responses events."""
PATH = "responses"

_OPENING = frozenset(("response.created", "response.in_progress", "response.queued"))
_OWNED = frozenset(
    (
        "model",
        "input",
        "previous_response_id",
        "conversation",
        "store",
        "stream",
        "stream_options",
        "background",
        "metadata",
    )
)
"""Fields chatgate answers itself and never sends on as the client gave them."""
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


@dataclass(slots=True)
class PassthroughSpec:
    """What a passed-through Responses request sends besides its history: the client's body
    (less what chatgate owns), its own input items as it gave them, and how many of the chat
    messages at the end of the core's context stand for them (the rest is the history)."""

    body: dict[str, Any]
    input: list[dict[str, Any]]
    new: int


def speaks_responses(provider: Provider) -> bool:
    return isinstance(provider, OpenAICompatProvider) and provider.config.responses == "passthrough"


def passes_through(route: ModelRoute) -> bool:
    """Whether any deployment of ``route`` takes Responses requests as they are."""
    return any(speaks_responses(d.provider) for d in route.deployments)


def forwarded(body: dict[str, Any]) -> dict[str, Any]:
    """The client's fields that go to the upstream as they are (tools, hosted ones included,
    ``reasoning``, ``text``, ``include``, sampling...)."""
    return {k: v for k, v in body.items() if k not in _OWNED and v is not None}


# ---- the body the upstream gets -------------------------------------------------------------


def _content(content: Any, kind: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": kind, "text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for part in content or ():
        if part.get("type") == "image_url":
            parts.append({"type": "input_image", "image_url": part["image_url"]["url"]})
        else:
            parts.append({"type": kind, "text": str(part.get("text") or "")})
    return parts


def history_items(messages: list[Message]) -> list[dict[str, Any]]:
    """Chat messages as Responses input items: each turn of the stored history."""
    items: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            output = message.get("content")
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.get("tool_call_id"),
                    "output": output if isinstance(output, str) else "",
                }
            )
            continue
        if role == "assistant":
            parts = _content(message.get("content"), "output_text")
            if parts:
                items.append({"type": "message", "role": "assistant", "content": parts})
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.get("id"),
                        "name": function.get("name"),
                        "arguments": function.get("arguments") or "",
                    }
                )
            continue
        kind = "input_text"
        items.append(
            {"type": "message", "role": role, "content": _content(message["content"], kind)}
        )
    return items


def upstream_body(spec: PassthroughSpec, messages: list[Message], model: str) -> dict[str, Any]:
    """The Responses body for one deployment: the history from chatgate's tree, then the
    client's own items unchanged, with ``store: false`` and always streamed (the deadlines of a
    stream apply, and a client that leaves stops the upstream)."""
    cut = len(messages) - spec.new
    history = messages[:cut] if cut > 0 else []
    system = [m for m in history if m.get("role") == "system"]
    body = dict(spec.body, model=model, store=False, stream=True)
    body["input"] = history_items([m for m in history if m.get("role") != "system"]) + spec.input
    if body.get("instructions") is None and system and not _has_system(spec.input):
        body["instructions"] = "\n\n".join(str(m.get("content") or "") for m in system)
    return body


def _has_system(items: list[dict[str, Any]]) -> bool:
    return any(i.get("role") in ("system", "developer") for i in items)


# ---- what comes back ------------------------------------------------------------------------


def _usage(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    prompt, completion = data.get("input_tokens"), data.get("output_tokens")
    if type(prompt) is not int or type(completion) is not int:
        return None
    if not (0 <= prompt <= MAX_TOKENS and 0 <= completion <= MAX_TOKENS):
        return None
    return Usage(prompt, completion)


def _finish(response: dict[str, Any]) -> str:
    if response.get("status") == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        return _INCOMPLETE.get(str(reason), "length")
    output = response.get("output") or ()
    calls = any(isinstance(i, dict) and i.get("type") == "function_call" for i in output)
    return "tool_calls" if calls else "stop"


def _failure(name: str, event: dict[str, Any]) -> UpstreamError:
    """An ``error`` event, or a ``response.failed``'s error, as the client will be told it."""
    err = event.get("error") if event.get("type") != "error" else event
    if not isinstance(err, dict):
        response = event.get("response")
        err = response.get("error") if isinstance(response, dict) else None
    err = err if isinstance(err, dict) else {}
    message = str(err.get("message") or "no message")[:2000]
    exc = UpstreamError(f"upstream '{name}' reported: {message}")
    _keep_upstream_kind(exc, {"code": err.get("code"), "type": err.get("type")})
    return exc


def parse(name: str, complete: bytes, call: UpstreamCall) -> tuple[Delta | None, bool]:
    """``parse_events``; at a bad event, raises ``_Malformed`` with the good ones before it."""
    try:
        return parse_events(name, complete, call)
    except _BadLine as bad:
        cut = complete.find(bad.line)
        before = parse_events(name, complete[:cut], call)[0] if cut > 0 else None
        raise _Malformed(bad.error, before) from None


def parse_events(name: str, complete: bytes, call: UpstreamCall) -> tuple[Delta | None, bool]:
    """The text, finish and usage of complete Responses SSE events, and the events themselves
    (``Delta.extra``); the flag says the response ended. Raises ``_BadLine`` at a bad event."""
    events: list[dict[str, Any]] = []
    text: list[str] = []
    finish: str | None = None
    usage: Usage | None = None
    for line in complete.splitlines():
        if not line.startswith(b"data:"):
            continue  # event: lines name the type the data holds anyway
        try:
            event = orjson.loads(line[5:])
        except orjson.JSONDecodeError:
            if line[5:].strip() == b"[DONE]":
                continue
            event = None
        kind = event.get("type") if isinstance(event, dict) else None
        if not isinstance(kind, str) or not isinstance(event, dict):
            raise _BadLine(line, UpstreamError(f"upstream '{name}' sent malformed data"))
        if kind in ("error", "response.failed"):
            raise _BadLine(line, _failure(name, event))
        if kind in _OPENING:
            continue
        if kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
            text.append(event["delta"])
        elif kind in ("response.completed", "response.incomplete"):
            response = event.get("response")
            if not isinstance(response, dict):
                raise _BadLine(line, UpstreamError(f"upstream '{name}' sent malformed data"))
            finish, usage = _finish(response), _usage(response.get("usage"))
        events.append(event)
    if not events:
        return None, False
    delta = Delta("".join(text), None, None, finish, usage, {EVENTS: events})
    return delta, finish is not None
