"""OpenAI's Responses API over a Chat Completions exchange.

A Responses request is translated into a ``ChatRequest`` (its input items become chat messages,
its function tools chat tools, its ``text.format`` a ``response_format``), and the core's events
are turned back into a Response object and its event sequence. The state lives in the
conversation tree: a stored response is its reply message (``resp_<message id>``), so
``previous_response_id`` is simply the parent of the next question.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from chatgate.core.errors import ChatgateError, InvalidRequest, NotFound
from chatgate.core.events import ChatEvent, Delta, Done, ErrorEvent, Message, Usage

log = logging.getLogger("chatgate.responses")

RESPONSE_PREFIX = "resp_"
_TEXT_PARTS = frozenset(("input_text", "output_text", "text", "refusal", "summary_text"))
_SKIPPED_ITEMS = frozenset(("reasoning", "item_reference"))
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


class ContextTooLong(InvalidRequest):
    """The input does not fit the model's context window and ``truncation`` is disabled."""

    code = "context_length_exceeded"


def response_id(message_id: str) -> str:
    return RESPONSE_PREFIX + message_id


def message_id_of(resp_id: str) -> str:
    """The stored reply a response id names; anything else is not found."""
    if not resp_id.startswith(RESPONSE_PREFIX) or len(resp_id) > 80:
        raise NotFound(f"No response with id {resp_id!r}.", param="response_id")
    return resp_id[len(RESPONSE_PREFIX) :]


def item_id(prefix: str, resp_id: str, index: int = 0) -> str:
    """Output item ids derived from the response's, so a retrieved response shows the same;
    its message is ``msg_`` and the reply's id, as the Conversations API names that message."""
    base = resp_id[len(RESPONSE_PREFIX) :]
    return f"{prefix}_{base}" if index == 0 else f"{prefix}_{base}_{index}"


# ---- input items -> chat messages ----------------------------------------------------------


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"'{where}' must be a string or a list of parts.", param=where)
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS:
            raise InvalidRequest(f"'{where}' holds a part that is not text.", param=where)
        texts.append(str(part.get("text") or part.get("refusal") or ""))
    return "".join(texts)


def _user_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    """Text stays text; images become ``image_url`` parts, as chat takes them."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"'{where}' must be a string or a list of parts.", param=where)
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS:
            parts.append({"type": "text", "text": str(part.get("text") or "")})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            raise InvalidRequest(f"'{where}' holds a part of type {kind!r}.", param=where)
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _message(item: dict[str, Any], where: str) -> Message:
    role = _ROLES.get(str(item.get("role")))
    if role is None:
        raise InvalidRequest(f"'{where}.role' must be user, assistant, system or developer.")
    content = item.get("content")
    if role == "user":
        return {"role": role, "content": _user_content(content, f"{where}.content")}
    return {"role": role, "content": _text_of(content, f"{where}.content")}


def _function_call(item: dict[str, Any], where: str) -> dict[str, Any]:
    call_id, name = item.get("call_id"), item.get("name")
    if not isinstance(call_id, str) or not isinstance(name, str) or not name:
        raise InvalidRequest(f"'{where}' needs a call_id and a name.", param=where)
    space = item.get("namespace")
    if isinstance(space, str) and space:
        name = space + NAMESPACE_SEPARATOR + name
    arguments = item.get("arguments")
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments if isinstance(arguments, str) else ""},
    }


def _add_call(messages: list[Message], call: dict[str, Any]) -> None:
    """Calls that follow an assistant message belong to it, as one chat message holds them."""
    last = messages[-1] if messages else None
    if last is not None and last.get("role") == "assistant":
        last.setdefault("tool_calls", []).append(call)
        if last.get("content") == "":
            last["content"] = None
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def to_messages(raw_input: Any, instructions: Any, passthrough: bool = False) -> list[Message]:
    """The chat messages of a Responses ``input`` (text or items) and its ``instructions``.
    With ``passthrough`` (the model has an upstream that takes the items as they are) an item
    chat has no form for is left out of the chat messages instead of refused."""
    messages: list[Message] = []
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InvalidRequest("'instructions' must be a string.", param="instructions")
        messages.append({"role": "system", "content": instructions})
    if isinstance(raw_input, str):
        messages.append({"role": "user", "content": raw_input})
        return messages
    if not isinstance(raw_input, list) or not raw_input:
        raise InvalidRequest("'input' must be a string or a list of items.", param="input")
    for index, item in enumerate(raw_input):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"'{where}' must be an object.", param="input")
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            _add_call(messages, _function_call(item, where))
        elif kind == "function_call_output":
            output = item.get("output")
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                raise InvalidRequest(f"'{where}.call_id' must be a string.", param="input")
            text = output if isinstance(output, str) else _text_of(output, f"{where}.output")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
        elif kind not in _SKIPPED_ITEMS and not passthrough:
            raise InvalidRequest(f"'{where}' has a type chatgate cannot send: {kind!r}.")
    return messages


# ---- parameters ----------------------------------------------------------------------------


NAMESPACE_SEPARATOR = "__"
"""Joins a namespace and a tool's name into one chat function name (``crm__find``)."""


def _chat_tool(tool: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("A function tool needs a name.", param="tools")
    function = {k: tool[k] for k in ("description", "parameters", "strict") if k in tool}
    return {"type": "function", "function": {"name": prefix + name, **function}}


def function_tools(tools: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The function tools as chat tools, and the kinds of the hosted tools left out (no
    upstream behind a Chat Completions API can run them). The function tools of a
    ``namespace`` become chat functions named ``namespace__name``; a call of one is answered
    with its ``namespace`` and ``name`` apart again."""
    if tools is None:
        return [], []
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be a list.", param="tools")
    chat_tools: list[dict[str, Any]] = []
    left_out: list[str] = []
    for tool in tools:
        if not isinstance(tool, dict):
            raise InvalidRequest("Every tool must be an object.", param="tools")
        kind = tool.get("type")
        if kind == "function":
            chat_tools.append(_chat_tool(tool))
            continue
        inner = [t for t in tool.get("tools") or () if isinstance(t, dict)]
        functions = [t for t in inner if t.get("type") == "function"]
        space = tool.get("name")
        if kind == "namespace" and isinstance(space, str) and space and functions:
            prefix = space + NAMESPACE_SEPARATOR
            chat_tools += [_chat_tool(t, prefix) for t in functions]
            if len(functions) < len(inner):
                left_out.append(f"{space} (its custom tools)")
            continue
        left_out.append(str(kind))
    return chat_tools, left_out


def namespaces(tools: Any) -> dict[str, tuple[str, str]]:
    """Each namespaced function's chat name, and its namespace and own name."""
    out: dict[str, tuple[str, str]] = {}
    for tool in tools if isinstance(tools, list) else ():
        space = tool.get("name") if isinstance(tool, dict) else None
        if isinstance(space, str) and tool.get("type") == "namespace":
            for inner in tool.get("tools") or ():
                if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                    out[f"{space}{NAMESPACE_SEPARATOR}{inner['name']}"] = (space, inner["name"])
    return out


def _tool_choice(choice: Any) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return "auto"


def _response_format(text: Any) -> dict[str, Any] | None:
    if text is None:
        return None
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return None
    if not isinstance(fmt, dict):
        raise InvalidRequest("'text.format' must be an object.", param="text")
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        keys = ("name", "schema", "strict", "description")
        return {"type": "json_schema", "json_schema": {k: fmt[k] for k in keys if k in fmt}}
    raise InvalidRequest("'text.format.type' must be text, json_object or json_schema.")


TRUNCATIONS = ("auto", "disabled")


def _reasoning_effort(reasoning: Any) -> str | None:
    """``reasoning.effort``, which Chat Completions takes as ``reasoning_effort``; the summary
    and the rest have no Chat Completions form and are left out."""
    if reasoning is None:
        return None
    if not isinstance(reasoning, dict):
        raise InvalidRequest("'reasoning' must be an object.", param="reasoning")
    effort = reasoning.get("effort")
    if effort is not None and not isinstance(effort, str):
        raise InvalidRequest("'reasoning.effort' must be a string.", param="reasoning")
    return effort


def check_accepted(body: dict[str, Any]) -> None:
    """Fields chatgate accepts and answers without sending on: ``include`` (nothing it names,
    such as encrypted reasoning, exists behind a Chat Completions upstream), ``prompt_cache_key``
    and ``client_metadata`` (hints for OpenAI's own servers), ``truncation`` and
    ``background`` (done by chatgate itself). They are only checked for their type."""
    include = body.get("include")
    if include is not None and (
        not isinstance(include, list) or not all(isinstance(i, str) for i in include)
    ):
        raise InvalidRequest("'include' must be a list of strings.", param="include")
    key = body.get("prompt_cache_key")
    if key is not None and not isinstance(key, str):
        raise InvalidRequest("'prompt_cache_key' must be a string.", param="prompt_cache_key")
    client_metadata = body.get("client_metadata")
    if client_metadata is not None and not isinstance(client_metadata, dict):
        raise InvalidRequest("'client_metadata' must be an object.", param="client_metadata")
    truncation = body.get("truncation")
    if truncation is not None and truncation not in TRUNCATIONS:
        raise InvalidRequest("'truncation' is auto or disabled.", param="truncation")
    background = body.get("background")
    if background is not None and not isinstance(background, bool):
        raise InvalidRequest("'background' must be true or false.", param="background")


def chat_params(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The Chat Completions parameters of a Responses body, and the hosted tools left out."""
    check_accepted(body)
    params: dict[str, Any] = {}
    effort = _reasoning_effort(body.get("reasoning"))
    if effort is not None:
        params["reasoning_effort"] = effort
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            params[name] = body[name]
    if body.get("max_output_tokens") is not None:
        params["max_tokens"] = body["max_output_tokens"]
    tools, left_out = function_tools(body.get("tools"))
    if tools:
        params["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"))
        if choice is not None:
            params["tool_choice"] = choice
        if body.get("parallel_tool_calls") is not None:
            params["parallel_tool_calls"] = body["parallel_tool_calls"]
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        params["response_format"] = response_format
    return params, left_out


# ---- the Response object and its events ----------------------------------------------------


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def text_item(msg_id: str, text: str, status: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "type": "message",
        "id": msg_id,
        "status": status,
        "role": "assistant",
        "content": [part] if status != "in_progress" else [],
    }


@dataclass(slots=True)
class Echo:
    """What a Response repeats of its request."""

    model: str
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation_id: str | None = None
    store: bool = True
    body: dict[str, Any] = field(default_factory=dict)


def response_object(
    resp_id: str,
    echo: Echo,
    created_at: int,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None = None,
    finish_reason: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Response in OpenAI's shape."""
    body = echo.body
    reason = _INCOMPLETE.get(finish_reason or "")
    text = "".join(
        part["text"]
        for item in output
        if item["type"] == "message"
        for part in item["content"]
        if part.get("type") == "output_text"
    )
    data: dict[str, Any] = {
        "id": resp_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": {"reason": reason} if status == "incomplete" and reason else None,
        "instructions": echo.instructions,
        "max_output_tokens": body.get("max_output_tokens"),
        "model": echo.model,
        "output": output,
        "output_text": text,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": echo.previous_response_id,
        "conversation": {"id": echo.conversation_id} if echo.conversation_id else None,
        "reasoning": _echoed_reasoning(body.get("reasoning")),
        "background": body.get("background") is True,
        "store": echo.store,
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": echoed_tools(body.get("tools")),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "metadata": body.get("metadata") or {},
    }
    if usage is not None:
        data["usage"] = usage_object(usage)
    return data


def _echoed_reasoning(reasoning: Any) -> dict[str, Any] | None:
    if not isinstance(reasoning, dict):
        return None
    return {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")}


ECHOED = (
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "reasoning",
    "background",
    "temperature",
    "text",
    "tool_choice",
    "top_p",
    "truncation",
)
"""The request fields a stored response repeats when it is retrieved."""


def echoed_body(body: dict[str, Any]) -> dict[str, Any]:
    """What a stored response keeps of its request, to repeat it on retrieval."""
    kept = {name: body[name] for name in ECHOED if body.get(name) is not None}
    tools = echoed_tools(body.get("tools"))
    if tools:
        kept["tools"] = tools
    return kept


def echoed_tools(tools: Any) -> list[dict[str, Any]]:
    """The function tools a response used, in the Response's shape (hosted ones were left out)."""
    out = []
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict) and tool.get("type") == "function":
            out.append(
                {
                    "type": "function",
                    "name": tool.get("name"),
                    "description": tool.get("description"),
                    "parameters": tool.get("parameters"),
                    "strict": tool.get("strict"),
                }
            )
    return out


def status_of(finish_reason: str) -> str:
    return "incomplete" if finish_reason in _INCOMPLETE else "completed"


def error_object(exc: ChatgateError) -> dict[str, Any]:
    code = "rate_limit_exceeded" if exc.status == 429 else "server_error"
    return {"code": code, "message": exc.message}


def as_chat_call(item: dict[str, Any]) -> dict[str, Any]:
    """A ``function_call`` output item as a chat tool call."""
    name = item["name"]
    if item.get("namespace"):
        name = item["namespace"] + NAMESPACE_SEPARATOR + name
    function = {"name": name, "arguments": item["arguments"]}
    return {"id": item["call_id"], "type": "function", "function": function}


def answered_calls(messages: list[Message], calls: list[dict[str, Any]]) -> list[Message]:
    """``messages`` with the earlier response's calls put back before the first tool result
    whose call the input does not carry itself."""
    asked = {c["id"] for m in messages for c in m.get("tool_calls") or ()}
    for index, message in enumerate(messages):
        if message.get("role") == "tool" and message.get("tool_call_id") not in asked:
            wanted = [as_chat_call(c) for c in calls]
            call_message: Message = {"role": "assistant", "content": None, "tool_calls": wanted}
            return [*messages[:index], call_message, *messages[index:]]
    return messages


@dataclass(slots=True)
class _Call:
    item: dict[str, Any]
    index: int
    done: bool = False


class ResponseBuilder:
    """Turns the core's events into the Responses event sequence and the final Response.

    Every event gets the next ``sequence_number``; a non-streamed request reads ``response``
    once the events are spent.
    """

    def __init__(self, resp_id: str, echo: Echo) -> None:
        self.resp_id = resp_id
        self.echo = echo
        self.created_at = int(time.time())
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.text: list[str] = []
        self.text_index: int | None = None
        self.text_open = False
        self.calls: dict[int, _Call] = {}
        self.namespaces = namespaces(echo.body.get("tools"))
        self.response = self._snapshot("in_progress")

    def _snapshot(self, status: str, **extra: Any) -> dict[str, Any]:
        return response_object(
            self.resp_id, self.echo, self.created_at, status, list(self.output), **extra
        )

    def _event(self, kind: str, **data: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **data}
        self.sequence += 1
        return event

    def start(self, queued: bool = False) -> list[dict[str, Any]]:
        """The opening events; a background response is ``queued`` before it runs."""
        if not queued:
            return [
                self._event("response.created", response=self.response),
                self._event("response.in_progress", response=self.response),
            ]
        waiting = self._snapshot("queued")
        return [
            self._event("response.created", response=waiting),
            self._event("response.queued", response=waiting),
            self._event("response.in_progress", response=self.response),
        ]

    def current(self) -> dict[str, Any]:
        """The response as it stands, its text so far included, for a retrieve while it runs."""
        output = list(self.output)
        if self.text_open and self.text_index is not None:
            item = text_item(item_id("msg", self.resp_id), "".join(self.text), "completed")
            output[self.text_index] = {**item, "status": "in_progress"}
        status = self.response["status"]
        return response_object(self.resp_id, self.echo, self.created_at, status, output)

    def cancel(self) -> None:
        """A background response stopped by ``cancel``: what it had is kept, no event follows
        (the Responses stream has no cancellation event; a retrieve shows the status)."""
        self._close_text("incomplete")
        self.response = self._snapshot("cancelled")

    def feed(self, event: ChatEvent) -> list[dict[str, Any]]:
        if isinstance(event, Delta):
            out = self._text(event.text) if event.text else []
            for call in event.tool_calls or ():
                out += self._call(call)
            return out
        if isinstance(event, Done):
            return self._finish(event)
        return self._fail(event)

    # ---- text ---------------------------------------------------------------------------

    def _text(self, delta: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        msg_id = item_id("msg", self.resp_id)
        if self.text_index is None:
            self.text_index, self.text_open = len(self.output), True
            item = text_item(msg_id, "", "in_progress")
            self.output.append(item)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            added = self._event(
                "response.output_item.added", output_index=self.text_index, item=dict(item)
            )
            out.append(added)
            out.append(self._part("response.content_part.added", msg_id, part))
        self.text.append(delta)
        out.append(
            self._event(
                "response.output_text.delta",
                item_id=msg_id,
                output_index=self.text_index,
                content_index=0,
                delta=delta,
                logprobs=[],
            )
        )
        return out

    def _part(self, kind: str, msg_id: str, part: dict[str, Any]) -> dict[str, Any]:
        return self._event(
            kind, item_id=msg_id, output_index=self.text_index, content_index=0, part=part
        )

    def _close_text(self, status: str) -> list[dict[str, Any]]:
        if not self.text_open or self.text_index is None:
            return []
        self.text_open = False
        msg_id, text = item_id("msg", self.resp_id), "".join(self.text)
        item = text_item(msg_id, text, status)
        self.output[self.text_index] = item
        return [
            self._event(
                "response.output_text.done",
                item_id=msg_id,
                output_index=self.text_index,
                content_index=0,
                text=text,
                logprobs=[],
            ),
            self._part("response.content_part.done", msg_id, item["content"][0]),
            self._event("response.output_item.done", output_index=self.text_index, item=item),
        ]

    # ---- tool calls ---------------------------------------------------------------------

    def _call(self, piece: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._close_text("completed")
        index = piece.get("index", len(self.calls))
        function = piece.get("function") or {}
        call = self.calls.get(index)
        if call is None:
            item = {
                "type": "function_call",
                "id": item_id("fc", self.resp_id, len(self.calls) + 1),
                "call_id": piece.get("id") or item_id("call", self.resp_id, len(self.calls) + 1),
                "name": function.get("name") or "",
                "arguments": "",
                "status": "in_progress",
            }
            self._name(item)
            call = self.calls[index] = _Call(item, len(self.output))
            self.output.append(item)
            added = self._event("response.output_item.added", output_index=call.index, item=item)
            out.append({**added, "item": dict(item)})
        elif function.get("name"):
            call.item["name"] += function["name"]
        delta = function.get("arguments") or ""
        if delta:
            call.item["arguments"] += delta
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=call.item["id"],
                    output_index=call.index,
                    delta=delta,
                )
            )
        return out

    def _name(self, item: dict[str, Any]) -> None:
        """A namespaced function's call names its namespace and its own name apart."""
        found = self.namespaces.get(item["name"])
        if found is not None:
            item["namespace"], item["name"] = found

    def _close_calls(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for call in self.calls.values():
            if call.done:
                continue
            call.done = True
            call.item["status"] = "completed"
            self._name(call.item)
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=call.item["id"],
                    output_index=call.index,
                    name=call.item["name"],
                    arguments=call.item["arguments"],
                )
            )
            out.append(
                self._event(
                    "response.output_item.done", output_index=call.index, item=dict(call.item)
                )
            )
        return out

    def function_items(self) -> list[dict[str, Any]]:
        return [dict(call.item) for call in self.calls.values()]

    # ---- the end ------------------------------------------------------------------------

    def _finish(self, done: Done) -> list[dict[str, Any]]:
        status = status_of(done.finish_reason)
        if self.echo.store and done.conversation_id is not None:
            self.echo.conversation_id = done.conversation_id
        out = self._close_text("completed" if status == "completed" else "incomplete")
        out += self._close_calls()
        self.response = self._snapshot(status, usage=done.usage, finish_reason=done.finish_reason)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        out.append(self._event(kind, response=self.response))
        return out

    def _fail(self, event: ErrorEvent) -> list[dict[str, Any]]:
        out = self._close_text("incomplete")
        self.response = self._snapshot("failed", error=error_object(event.error))
        out.append(self._event("response.failed", response=self.response))
        return out


def stored_output(resp_id: str, text: str, finish_reason: str | None) -> list[dict[str, Any]]:
    """The output of a stored response: its reply's text as one message."""
    if not text:
        return []
    status = "incomplete" if status_of(finish_reason or "stop") == "incomplete" else "completed"
    return [text_item(item_id("msg", resp_id), text, status)]


def input_item(message_id: str, role: str, text: str) -> dict[str, Any]:
    """A stored message as an input item of the response that answered it."""
    kind = "output_text" if role == "assistant" else "input_text"
    part: dict[str, Any] = {"type": kind, "text": text}
    if kind == "output_text":
        part.update(annotations=[], logprobs=[])
    return {
        "type": "message",
        "id": "msg_" + message_id,
        "status": "completed",
        "role": role if role in ("user", "assistant", "system", "developer") else "user",
        "content": [part],
    }


def replayed_events(stored: dict[str, Any]) -> list[dict[str, Any]]:
    """The event sequence of a finished stored response, made again from what was kept (its
    text arrives as one delta): how a stream is resumed once its events are no longer held."""
    echo = Echo(stored["model"], stored.get("instructions"), store=True, body=stored)
    build = ResponseBuilder(stored["id"], echo)
    build.created_at = int(stored["created_at"])
    opening = {k: v for k, v in stored.items() if k != "usage"}
    build.response = {**opening, "status": "in_progress", "output": [], "output_text": ""}
    build.response.update(completed_at=None, error=None, incomplete_details=None)
    events = build.start()
    for item in stored["output"]:
        if item["type"] == "message":
            text = "".join(p.get("text", "") for p in item["content"])
            events += build.feed(Delta(text=text)) if text else []
        elif item["type"] == "function_call":
            piece = {
                "index": len(build.calls),
                "id": item["call_id"],
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            if item.get("namespace"):
                build.namespaces[item["name"]] = (item["namespace"], item["name"])
            events += build.feed(Delta(tool_calls=[piece]))
        else:  # a hosted tool call or reasoning an upstream passed through: added, then done
            events += build._close_text("completed")
            index = len(build.output)
            build.output.append(item)
            for name in ("response.output_item.added", "response.output_item.done"):
                events.append(build._event(name, output_index=index, item=item))
    status = stored["status"]
    events += build._close_text("completed" if status == "completed" else "incomplete")
    events += build._close_calls()
    kind = {"completed": "response.completed", "incomplete": "response.incomplete"}
    if status in kind:
        events.append(build._event(kind[status], response=stored))
    elif status == "failed":
        events.append(build._event("response.failed", response=stored))
    return events
