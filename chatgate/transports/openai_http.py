"""The OpenAI-compatible HTTP API: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``.

These are the hottest routes, so they are plain Starlette endpoints: the body is parsed once with
orjson, the upstream's own bytes are relayed when they can be, and chunks are rendered here only
for providers that have no wire format of their own (the in-process demo model).
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from chatgate.core.accounts import Principal
from chatgate.core.errors import ChatgateError, InvalidRequest
from chatgate.core.events import ChatEvent, ChatRequest, Delta, Done, ErrorEvent
from chatgate.core.quotas import Reservation
from chatgate.core.validation import check_messages, check_params
from chatgate.services import Services
from chatgate.transports.asgi import ClientGone, ClientWatch, Head, JsonReply, read_body
from chatgate.transports.http_common import (
    INTERNAL,
    authenticate,
    authenticate_credential,
    error_body,
    error_response,
    head_credential,
    json_response,
    parse_object,
    rate_headers,
    services_of,
)
from chatgate.transports.sse_response import SSEResponse

log = logging.getLogger("chatgate.http")
_OURS = frozenset(("model", "messages", "prompt", "stream", "conversation_id", "parent_id"))
_DONE_LINE = b"data: [DONE]\n\n"


# ---- parsing --------------------------------------------------------------------------------


def _optional_id(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 64:
        raise InvalidRequest(f"'{name}' must be a non-empty string id.", param=name)
    return value


def _common(body: dict[str, Any], kind: str) -> ChatRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", param="model")
    check_params(body)
    stream = body.get("stream", False)
    options = body.get("stream_options")
    return ChatRequest(
        model=model,
        kind="chat" if kind == "chat" else "completion",
        stream=bool(stream),
        params={k: v for k, v in body.items() if k not in _OURS},
        conversation_id=_optional_id(body, "conversation_id"),
        parent_id=_optional_id(body, "parent_id"),
        wants_raw=True,
        client_usage=bool(stream and options and options.get("include_usage")),
    )


def parse_chat(body: dict[str, Any]) -> ChatRequest:
    """A chat request whose whole shape (messages, tools, parameters) has been checked, so a
    client's mistake is a 400 naming the field, never a crash further in."""
    request = _common(body, "chat")
    check_messages(body.get("messages"))
    request.messages = body["messages"]
    return request


def parse_completion(body: dict[str, Any]) -> ChatRequest:
    request = _common(body, "completion")
    prompt = body.get("prompt")
    is_list = isinstance(prompt, list) and bool(prompt) and all(isinstance(p, str) for p in prompt)
    if is_list or isinstance(prompt, str):
        request.prompt = prompt
    else:
        raise InvalidRequest("'prompt' must be a string or an array of strings.", param="prompt")
    return request


# ---- rendering ------------------------------------------------------------------------------


class _Renderer:
    """Builds OpenAI-shaped chunks and bodies for replies that were not relayed as bytes."""

    def __init__(self, request: ChatRequest, model: str) -> None:
        self.request = request
        self.chat = request.kind == "chat"
        self.created = int(time.time())
        self.model = model
        self.object = "chat.completion.chunk" if self.chat else "text_completion"

    @functools.cached_property
    def id(self) -> str:
        """Made only for a reply rendered here; a relayed one carries the upstream's id."""
        return ("chatcmpl-" if self.chat else "cmpl-") + secrets.token_hex(12)

    def _chunk(self, choice: dict[str, Any] | None, **extra: Any) -> bytes:
        data: dict[str, Any] = {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "choices": [choice] if choice is not None else [],
        }
        data.update(extra)
        return b"data: " + orjson.dumps(data) + b"\n\n"

    def role_chunk(self) -> bytes:
        if not self.chat:
            return b""
        return self._chunk(
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        )

    def delta_chunk(self, piece: Delta) -> bytes:
        if self.chat:
            delta: dict[str, Any] = {}
            if piece.text:
                delta["content"] = piece.text
            if piece.tool_calls:
                delta["tool_calls"] = piece.tool_calls
            if not delta:
                return b""
            return self._chunk(
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
            )
        if not piece.text:
            return b""
        return self._chunk(
            {"index": 0, "text": piece.text, "logprobs": None, "finish_reason": None}
        )

    def final_chunks(self, done: Done, relayed: bool) -> bytes:
        ids = _ids(done)
        out = b""
        if not relayed:
            finish: dict[str, Any] = {
                "index": 0,
                "logprobs": None,
                "finish_reason": done.finish_reason,
            }
            if self.chat:
                finish["delta"] = {}
            else:
                finish["text"] = ""
            out += self._chunk(finish, **ids)
            if self.request.client_usage:
                out += self._chunk(None, usage=done.usage.as_openai())
        elif ids:
            out += self._chunk(None, **ids)
        return out

    def body(
        self, text: str, tool_calls: list[dict[str, Any]] | None, done: Done
    ) -> dict[str, Any]:
        if self.chat:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": text or None,
                "refusal": None,
            }
            if tool_calls:
                message["tool_calls"] = [
                    {k: v for k, v in call.items() if k != "index"} for call in tool_calls
                ]
            choice: dict[str, Any] = {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": done.finish_reason,
            }
            obj = "chat.completion"
        else:
            choice = {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": done.finish_reason,
            }
            obj = "text_completion"
        data: dict[str, Any] = {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": done.usage.as_openai(),
        }
        data.update(_ids(done))
        return data


def _ids(done: Done) -> dict[str, Any]:
    if done.conversation_id is None:
        return {}
    return {
        "conversation_id": done.conversation_id,
        "message_id": done.message_id,
        "parent_id": done.parent_id,
    }


def _sse_error(exc: ChatgateError) -> bytes:
    return b"data: " + orjson.dumps(error_body(exc)) + b"\n\n"


async def _sse(
    first: ChatEvent, events: AsyncGenerator[ChatEvent, None], render: _Renderer
) -> AsyncGenerator[bytes, None]:
    """Write the stream; it ends with ``[DONE]`` only when the reply really finished, and with
    an error event when it did not (a bug included: the headers are gone, the stream is not)."""
    async with aclosing(events):
        event: ChatEvent | None = first
        relayed = False
        started = False
        try:
            while event is not None:
                if isinstance(event, Delta):
                    if event.raw is not None:
                        relayed = True
                        yield event.raw
                    else:
                        if not started and not relayed:
                            yield render.role_chunk()
                        out = render.delta_chunk(event)
                        if out:
                            yield out
                    started = True
                elif isinstance(event, Done):
                    if not started and not relayed:
                        yield render.role_chunk()
                    yield render.final_chunks(event, relayed) + _DONE_LINE
                    return
                elif isinstance(event, ErrorEvent):
                    yield _sse_error(event.error)
                    return
                event = await anext(events, None)
        except Exception:
            log.exception("unexpected error while streaming a reply")
            yield _sse_error(INTERNAL)


async def _whole(
    first: ChatEvent, events: AsyncGenerator[ChatEvent, None], render: _Renderer
) -> Response:
    """Collect a non-streamed reply; relay the upstream's own body when there is one."""
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    raw: bytes | None = None
    async with aclosing(events):
        event: ChatEvent | None = first
        while event is not None:
            if isinstance(event, Delta):
                raw = event.raw
                texts.append(event.text)
                tool_calls.extend(event.tool_calls or ())
            elif isinstance(event, ErrorEvent):
                return error_response(event.error)
            elif isinstance(event, Done):
                ids = _ids(event)
                if raw is not None and len(texts) == 1:
                    if not ids:
                        return JsonReply(raw)
                    data = orjson.loads(raw)
                    data.update(ids)
                    return json_response(data)
                return json_response(render.body("".join(texts), tool_calls or None, event))
            event = await anext(events, None)
    raise RuntimeError("the chat stream ended without a Done event")


async def _prepare(scope: Scope, receive: Receive, kind: str) -> tuple[Principal, ChatRequest]:
    """The caller and their request: authenticated first, then read and checked."""
    services: Services = scope["app"].state.services
    head = Head(scope)
    principal = await authenticate_credential(services, head_credential(head))
    body = parse_object(await read_body(receive, head, services.settings.max_request_bytes))
    chat = parse_chat(body) if kind == "chat" else parse_completion(body)
    return principal, chat


async def _answer(services: Services, principal: Principal, chat: ChatRequest) -> Response:
    reserved: list[Reservation] = []
    events = services.chat.stream(principal, chat, on_reserved=reserved.append)
    try:
        first = await anext(events)
    except ChatgateError as exc:
        return error_response(exc)
    render = _Renderer(chat, chat.model)
    limits = rate_headers(reserved[0].facts) if reserved else {}
    if chat.stream:
        return SSEResponse(_sse(first, events, render), headers=limits)
    response = await _whole(first, events, render)
    if limits:
        response.headers.update(limits)
    return response


def internal_error(scope: Scope) -> Response:
    """The last resort: a bug answers a 500 in OpenAI's shape, its traceback kept in the log."""
    log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
    return error_response(INTERNAL)


class ChatEndpoint:
    """``POST /v1/chat/completions`` or ``/v1/completions`` as a plain ASGI app.

    From the moment the body is read, a ``ClientWatch`` cancels everything the request does
    (the upstream call and its retries included) when the client leaves.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            principal, chat = await _prepare(scope, receive, self.kind)
        except ClientGone:
            return
        except ChatgateError as exc:
            await error_response(exc)(scope, receive, send)
            return
        except Exception:
            await internal_error(scope)(scope, receive, send)
            return
        with ClientWatch(receive):
            try:
                response = await _answer(scope["app"].state.services, principal, chat)
            except Exception:
                response = internal_error(scope)
            await response(scope, receive, send)


chat_completions = ChatEndpoint("chat")
completions = ChatEndpoint("completion")


def _model_card(name: str, route: Any) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": route.created,
        "owned_by": route.owned_by,
    }


async def list_models(request: Request) -> Response:
    """The models (aliases included) this caller may use."""
    try:
        principal = await authenticate(request)
    except ChatgateError as exc:
        return error_response(exc)
    models = services_of(request).models
    cards = [_model_card(n, models.resolve(n)) for n in models.names(principal)]
    return json_response({"object": "list", "data": cards})


async def get_model(request: Request) -> Response:
    try:
        principal = await authenticate(request)
        name = request.path_params["model"]
        route = services_of(request).models.resolve(name, principal)
    except ChatgateError as exc:
        return error_response(exc)
    return json_response(_model_card(name, route))


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", get_model, methods=["GET"]),
]
