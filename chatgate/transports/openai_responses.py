"""OpenAI's Responses API: ``/v1/responses`` in front of any Chat Completions upstream.

A thin transport over the core: the request becomes a ``ChatRequest`` (``core/responses.py``)
answered by ``services.chat.stream`` like every other chat, so quotas, usage, ownership, retries
and error shapes apply unchanged. The state is the conversation tree: a stored response is its
reply message, ``previous_response_id`` the parent of the next question, ``conversation`` a
conversation continued from its current leaf, and ``store: false`` keeps nothing but the usage.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from chatgate.core.accounts import Principal
from chatgate.core.conversations import CONTEXT_ROLES, NEW
from chatgate.core.errors import ChatgateError, InvalidRequest, NotFound
from chatgate.core.events import ChatEvent, ChatRequest, Done, ErrorEvent, Message, Usage
from chatgate.core.ids import new_id
from chatgate.core.quotas import Reservation
from chatgate.core.responses import (
    Echo,
    ResponseBuilder,
    ToolCalls,
    answered_calls,
    chat_params,
    error_object,
    input_item,
    message_id_of,
    response_id,
    response_object,
    status_of,
    stored_output,
    to_messages,
)
from chatgate.core.validation import check_params
from chatgate.services import Services
from chatgate.transports.asgi import ClientGone, ClientWatch, Head, read_body
from chatgate.transports.http_common import (
    INTERNAL,
    authenticate,
    authenticate_credential,
    error_response,
    head_credential,
    json_response,
    parse_object,
    rate_headers,
    services_of,
)
from chatgate.transports.sse_response import SSEResponse

log = logging.getLogger("chatgate.responses")
CALLS = ToolCalls()


# ---- the request ----------------------------------------------------------------------------


def _conversation_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("id")
    if not isinstance(value, str) or not value or len(value) > 64:
        raise InvalidRequest("'conversation' must be a conversation id.", param="conversation")
    return value


def _metadata(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or len(value) > 16:
        raise InvalidRequest("'metadata' must be an object of at most 16 keys.", param="metadata")
    for key, item in value.items():
        if len(key) > 64 or not isinstance(item, str) or len(item) > 512:
            raise InvalidRequest(
                "'metadata' keys are strings of at most 64 characters, values of 512.",
                param="metadata",
            )


def _history(path: list[Any], system: str | None) -> list[Message]:
    head: list[Message] = [{"role": "system", "content": system}] if system else []
    return head + [{"role": n.role, "content": n.content} for n in path if n.role in CONTEXT_ROLES]


async def _build(
    services: Services, principal: Principal, body: dict[str, Any]
) -> tuple[ChatRequest, Echo]:
    """The chat request of a Responses body, placed in its conversation, and what the Response
    repeats of the body."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", param="model")
    previous = body.get("previous_response_id")
    if previous is not None and not isinstance(previous, str):
        raise InvalidRequest(
            "'previous_response_id' must be a string.", param="previous_response_id"
        )
    conversation = _conversation_id(body.get("conversation"))
    if previous is not None and conversation is not None:
        raise InvalidRequest(
            "Use previous_response_id or conversation, not both.", param="conversation"
        )
    _metadata(body.get("metadata"))
    store = body.get("store", True) is not False
    params, left_out = chat_params(body)
    check_params(params)
    if left_out:
        log.info("hosted tools left out of a response (no upstream runs them): %s", left_out)
    messages = to_messages(body.get("input"), body.get("instructions"))
    request = ChatRequest(model=model, messages=messages, stream=True, params=params)
    echo = Echo(model, body.get("instructions"), previous, conversation, store, body)
    chats = services.conversations
    if previous is not None:
        parent = message_id_of(previous)
        state = await chats.holding(principal, parent)
        if state.nodes[parent].role != "assistant":
            raise NotFound(f"No response with id {previous!r}.", param="previous_response_id")
        request.conversation_id, request.parent_id = state.id, parent
        request.messages = messages = answered_calls(messages, CALLS.recall(parent))
        history = _history(state.path(parent), state.system_prompt)
    elif conversation is not None:
        state = await chats.owned(principal, conversation, write=store)
        request.conversation_id = state.id
        history = _history(state.path(state.leaf_id), state.system_prompt)
    else:
        request.conversation_id, history = NEW, []
    if not store:
        has_system = any(m["role"] == "system" for m in messages)
        kept = [m for m in history if not (has_system and m["role"] == "system")]
        request.messages = (
            [m for m in messages if m["role"] == "system"]
            + kept
            + [m for m in messages if m["role"] != "system"]
        )
        request.conversation_id = request.parent_id = None
    request.reply_id = new_id()
    return request, echo


# ---- the reply ------------------------------------------------------------------------------


def _sse_line(event: dict[str, Any]) -> bytes:
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _keep_calls(done: Done, build: ResponseBuilder) -> None:
    if build.echo.store and done.message_id is not None:
        CALLS.remember(done.message_id, build.function_items())


async def _sse(
    first: ChatEvent, events: AsyncGenerator[ChatEvent, None], build: ResponseBuilder
) -> AsyncGenerator[bytes, None]:
    """The Responses event sequence; it ends with ``response.completed``, ``.incomplete`` or
    ``.failed`` (a bug included: the headers are gone, the stream is not)."""
    async with aclosing(events):
        try:
            yield b"".join(_sse_line(e) for e in build.start())
            event: ChatEvent | None = first
            while event is not None:
                out = build.feed(event)
                if isinstance(event, Done):
                    _keep_calls(event, build)
                if out:
                    yield b"".join(_sse_line(e) for e in out)
                if isinstance(event, Done | ErrorEvent):
                    return
                event = await anext(events, None)
        except Exception:
            log.exception("unexpected error while streaming a response")
            yield _sse_line(build.feed(ErrorEvent(INTERNAL))[-1])


async def _whole(
    first: ChatEvent, events: AsyncGenerator[ChatEvent, None], build: ResponseBuilder
) -> Response:
    async with aclosing(events):
        event: ChatEvent | None = first
        while event is not None:
            build.feed(event)
            if isinstance(event, ErrorEvent):
                return error_response(event.error)
            if isinstance(event, Done):
                _keep_calls(event, build)
                return json_response(build.response)
            event = await anext(events, None)
    raise RuntimeError("the chat stream ended without a Done event")


async def _answer(services: Services, principal: Principal, body: dict[str, Any]) -> Response:
    try:
        request, echo = await _build(services, principal, body)
        reserved: list[Reservation] = []
        events = services.chat.stream(principal, request, on_reserved=reserved.append)
        first = await anext(events)
    except ChatgateError as exc:
        return error_response(exc)
    assert request.reply_id is not None
    resp_id = response_id(request.reply_id) if echo.store else "resp_" + new_id()
    build = ResponseBuilder(resp_id, echo)
    limits = rate_headers(reserved[0].facts) if reserved else {}
    if body.get("stream"):
        return SSEResponse(_sse(first, events, build), headers=limits)
    response = await _whole(first, events, build)
    if limits:
        response.headers.update(limits)
    return response


class CreateEndpoint:
    """``POST /v1/responses`` as a plain ASGI app, watched for the client leaving from the
    moment its body is read, like the chat routes."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _create(scope, receive, send)


async def _create(scope: Scope, receive: Receive, send: Send) -> None:
    services: Services = scope["app"].state.services
    head = Head(scope)
    try:
        principal = await authenticate_credential(services, head_credential(head))
        body = parse_object(await read_body(receive, head, services.settings.max_request_bytes))
    except ClientGone:
        return
    except ChatgateError as exc:
        await error_response(exc)(scope, receive, send)
        return
    with ClientWatch(receive):
        try:
            response = await _answer(services, principal, body)
        except Exception:
            log.exception("unexpected error on POST /v1/responses")
            response = error_response(INTERNAL)
        await response(scope, receive, send)


# ---- stored responses -----------------------------------------------------------------------


async def _stored(request: Request) -> dict[str, Any]:
    """A stored response rebuilt from its reply message and the tree around it."""
    principal = await authenticate(request)
    resp_id = request.path_params["response_id"]
    message_id = message_id_of(resp_id)
    chats = services_of(request).conversations
    state = await chats.holding(principal, message_id)
    row = await chats.stored_message(principal, message_id)
    if row.role != "assistant":
        raise NotFound(f"No response with id {resp_id!r}.", param="response_id")
    question = state.nodes.get(row.parent_id) if row.parent_id else None
    before = state.nodes.get(question.parent_id) if question and question.parent_id else None
    previous = response_id(before.id) if before is not None and before.role == "assistant" else None
    echo = Echo(row.model or "", None, previous, state.id, True, {})
    usage = Usage(row.prompt_tokens, row.completion_tokens)
    finish = row.finish_reason or "stop"
    status = "failed" if finish == "error" else status_of(finish)
    if finish == "cancelled":
        status = "cancelled"
    output = stored_output(resp_id, row.content, finish) + CALLS.recall(message_id)
    data = response_object(resp_id, echo, int(row.created_at), status, output, usage, finish)
    if status == "failed":
        data["error"] = error_object(INTERNAL)
    return data


async def retrieve_response(request: Request) -> Response:
    """``GET /v1/responses/{id}``: a finished response; another user's is not found."""
    try:
        return json_response(await _stored(request))
    except ChatgateError as exc:
        return error_response(exc)


async def delete_response(request: Request) -> Response:
    """``DELETE /v1/responses/{id}``: the reply and every message after it leave the tree."""
    try:
        principal = await authenticate(request)
        resp_id = request.path_params["response_id"]
        message_id = message_id_of(resp_id)
        chats = services_of(request).conversations
        row = await chats.stored_message(principal, message_id)
        if row.role != "assistant":
            raise NotFound(f"No response with id {resp_id!r}.", param="response_id")
        await chats.delete_branch(principal, message_id)
        CALLS.forget(message_id)
    except ChatgateError as exc:
        return error_response(exc)
    return json_response({"id": resp_id, "object": "response.deleted", "deleted": True})


async def cancel_response(request: Request) -> Response:
    """``POST /v1/responses/{id}/cancel``: only a background response can be cancelled, and
    chatgate runs none in the background, so a response of the caller's is refused with 400."""
    try:
        principal = await authenticate(request)
        resp_id = request.path_params["response_id"]
        chats = services_of(request).conversations
        row = await chats.stored_message(principal, message_id_of(resp_id))
        if row.role != "assistant":
            raise NotFound(f"No response with id {resp_id!r}.", param="response_id")
        raise InvalidRequest("Only responses created with background=true can be cancelled.")
    except ChatgateError as exc:
        return error_response(exc)


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise InvalidRequest("'limit' is a number from 1 to 100.", param="limit")
    return int(raw)


async def list_input_items(request: Request) -> Response:
    """``GET /v1/responses/{id}/input_items``: the messages the response answered, from the
    tree (its whole path, as a chained response's context is)."""
    try:
        principal = await authenticate(request)
        resp_id = request.path_params["response_id"]
        message_id = message_id_of(resp_id)
        state = await services_of(request).conversations.holding(principal, message_id)
        node = state.nodes[message_id]
        if node.role != "assistant":
            raise NotFound(f"No response with id {resp_id!r}.", param="response_id")
        order = request.query_params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequest("'order' is asc or desc.", param="order")
        limit = _limit(request)
        items = [input_item(n.id, n.role, n.content) for n in state.path(node.parent_id)]
        if order == "desc":
            items.reverse()
        after = request.query_params.get("after")
        if after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
    except ChatgateError as exc:
        return error_response(exc)
    page = items[:limit]
    return json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )


routes = [
    Route("/v1/responses", CreateEndpoint(), methods=["POST"]),
    Route("/v1/responses/{response_id}", retrieve_response, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
    Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
    Route("/v1/responses/{response_id}/cancel", cancel_response, methods=["POST"]),
]
