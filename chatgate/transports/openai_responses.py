"""OpenAI's Responses API: ``/v1/responses`` in front of any Chat Completions upstream.

A thin transport over the core: the request becomes a ``ChatRequest`` (``core/responses.py``)
answered by ``services.chat.stream`` like every other chat, so quotas, usage, ownership, retries
and error shapes apply unchanged. The state is the conversation tree: a stored response is its
reply message, ``previous_response_id`` the parent of the next question, ``conversation`` a
conversation continued from its current leaf, and ``store: false`` keeps nothing but the usage.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from chatgate.core.context import fit, reply_reserve
from chatgate.core.conversations import CONTEXT_ROLES, NEW
from chatgate.core.errors import ChatgateError, Conflict, InvalidRequest, NotFound
from chatgate.core.events import ChatEvent, ChatRequest, Delta, Done, ErrorEvent, Message, Usage
from chatgate.core.ids import new_id
from chatgate.core.quotas import Reservation
from chatgate.core.response_store import TERMINAL, Run
from chatgate.core.responses import (
    ContextTooLong,
    Echo,
    ResponseBuilder,
    answered_calls,
    chat_params,
    echoed_body,
    error_object,
    input_item,
    message_id_of,
    replayed_events,
    response_id,
    response_object,
    status_of,
    stored_output,
    to_messages,
)
from chatgate.core.responses_passthrough import RelayBuilder, passthrough_spec
from chatgate.core.validation import check_params
from chatgate.providers.responses_relay import SPEC_KEY, passes_through
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
LEFT_OUT_HEADER = "x-chatgate-tools-left-out"


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


def _history(path: list[Any], system: str | None) -> tuple[list[Message], list[int]]:
    """The stored context before a new question, and each message's size in tokens."""
    head: list[Message] = [{"role": "system", "content": system}] if system else []
    kept = [n for n in path if n.role in CONTEXT_ROLES]
    messages = head + [{"role": n.role, "content": n.content} for n in kept]
    return messages, [0] * len(head) + [n.tokens + 4 for n in kept]


def _fit(
    services: Services,
    principal: Principal,
    request: ChatRequest,
    history: list[Message],
    sizes: list[int],
    truncation: str,
) -> list[Message] | None:
    """``truncation``: with ``disabled`` (the default) a context that does not fit the model's
    configured window is a 400; with ``auto`` the oldest turns are dropped (the history it
    keeps is returned; for a stored conversation the core drops them itself, the same way).
    A model without a configured window is left to its upstream, which knows its own."""
    config = services.models.resolve(request.model, principal).config
    window = (
        config.context_window
        if "context_window" in config.model_fields_set
        else services.settings.default_context_window
    )
    budget = window - reply_reserve(request.params, window)
    known = "context_window" in config.model_fields_set
    if truncation != "auto" and not known:
        return None  # the upstream's own context-length error says it better than a guess
    count = services.conversations.counter.message
    new = request.messages
    fixed = sum(count(m) for m in new)
    if fixed + sum(sizes) + 2 <= budget:
        return None
    if truncation != "auto":
        raise ContextTooLong(
            f"The input ({fixed + sum(sizes)} tokens) does not fit the context window of "
            f"{request.model!r} ({window} tokens, {window - budget} of them kept for the "
            "reply); send truncation: 'auto' to drop the oldest turns.",
            param="input",
        )
    system = [m for m in history if m["role"] == "system"]
    rest = [m for m in history if m["role"] != "system"]
    return fit(system, rest, new, budget=budget, sizes=sizes[len(system) :], fixed=fixed)


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
    passthrough = passes_through(services.models.resolve(model, principal))
    store = body.get("store", True) is not False
    params, left_out = chat_params(body)
    check_params(params)
    if body.get("background") is True and not store:
        raise InvalidRequest(
            "A background response must be stored (store: true).", param="background"
        )
    if left_out and not passthrough:
        log.info("hosted tools left out of a response (no upstream runs them): %s", left_out)
    messages = to_messages(body.get("input"), body.get("instructions"), passthrough)
    request = ChatRequest(model=model, messages=messages, stream=True, params=params)
    echo = Echo(model, body.get("instructions"), previous, conversation, store, body)
    chats = services.conversations
    calls: list[dict[str, Any]] = []
    if previous is not None:
        parent = message_id_of(previous)
        state = await chats.holding(principal, parent)
        if state.nodes[parent].role != "assistant":
            raise NotFound(f"No response with id {previous!r}.", param="previous_response_id")
        request.conversation_id, request.parent_id = state.id, parent
        record = await services.responses.records.get(parent)
        calls = record.get("calls", []) if record else []
        request.messages = messages = answered_calls(messages, calls)
        history, sizes = _history(state.path(parent), state.system_prompt)
    elif conversation is not None:
        state = await chats.owned(principal, conversation, write=store)
        request.conversation_id = state.id
        history, sizes = _history(state.path(state.leaf_id), state.system_prompt)
    else:
        request.conversation_id, history, sizes = NEW, [], []
    if passthrough:
        params[SPEC_KEY] = passthrough_spec(body, messages, calls)
    fitted = _fit(services, principal, request, history, sizes, body.get("truncation") or "")
    if not store:
        if fitted is not None:
            history = [m for m in fitted if m not in messages]
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


def _builder(request: ChatRequest) -> type[ResponseBuilder]:
    """A request a deployment may pass through is relayed when it is (see
    ``core/responses_passthrough.py``); others are built from the core's events."""
    return RelayBuilder if SPEC_KEY in request.params else ResponseBuilder


def _sse_line(event: dict[str, Any]) -> bytes:
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _keep(services: Services, message_id: str | None, build: ResponseBuilder) -> None:
    """The stored response's echoed request and calls, written with its reply."""
    if not build.echo.store or message_id is None:
        return
    data = {
        **echoed_body(build.echo.body),
        "previous_response_id": build.echo.previous_response_id,
        "calls": build.function_items(),
    }
    if isinstance(build, RelayBuilder) and build.relayed:
        data["output"] = build.stored_output()
    services.responses.records.keep(message_id, data)


class _Pump:
    """Feeds the core's events to the builder, records them for followers (a stored
    response's run) and keeps the stored response's record when it is done."""

    def __init__(self, services: Services, build: ResponseBuilder, run: Run | None) -> None:
        self.services = services
        self.build = build
        self.run = run

    def feed(self, event: ChatEvent) -> list[dict[str, Any]]:
        out = self.build.feed(event)
        if isinstance(event, Done):
            _keep(self.services, event.message_id, self.build)
        if self.run is not None:
            self.run.add(out)
        return out

    def stopped(self, reply_id: str | None) -> None:
        """The reply stopped before its end (cancelled, or its client left): the partial
        reply the core kept gets its record, and followers learn it is over."""
        if self.run is None or self.run.finished:
            return
        self.build.cancel()
        if self.build.text:
            _keep(self.services, reply_id, self.build)
        self.run.end(self.build.response)


async def _sse(
    first: ChatEvent, events: AsyncGenerator[ChatEvent, None], pump: _Pump, reply_id: str | None
) -> AsyncGenerator[bytes, None]:
    """The Responses event sequence; it ends with ``response.completed``, ``.incomplete`` or
    ``.failed`` (a bug included: the headers are gone, the stream is not)."""
    async with aclosing(events):
        try:
            start = pump.build.start()
            if pump.run is not None:
                pump.run.add(start)
            yield b"".join(_sse_line(e) for e in start)
            event: ChatEvent | None = first
            while event is not None:
                out = pump.feed(event)
                if out:
                    yield b"".join(_sse_line(e) for e in out)
                if isinstance(event, Done | ErrorEvent):
                    return
                event = await anext(events, None)
        except Exception:
            log.exception("unexpected error while streaming a response")
            yield _sse_line(pump.feed(ErrorEvent(INTERNAL))[-1])
        finally:
            pump.stopped(reply_id)


async def _whole(
    first: ChatEvent, events: AsyncGenerator[ChatEvent, None], pump: _Pump, reply_id: str | None
) -> Response:
    async with aclosing(events):
        try:
            if pump.run is not None:
                pump.run.add(pump.build.start())
            event: ChatEvent | None = first
            while event is not None:
                pump.feed(event)
                if isinstance(event, ErrorEvent):
                    return error_response(event.error)
                if isinstance(event, Done):
                    return json_response(pump.build.response)
                event = await anext(events, None)
        finally:
            pump.stopped(reply_id)
    raise RuntimeError("the chat stream ended without a Done event")


async def _detached(
    events: AsyncGenerator[ChatEvent, None], pump: _Pump, reply_id: str | None
) -> None:
    """A background response: run to its end whoever is listening; ``cancel`` stops it."""
    async with aclosing(events):
        try:
            async for event in events:
                out = pump.feed(event)
                if any(e["type"] in TERMINAL for e in out):
                    return
        except ChatgateError as exc:
            pump.feed(ErrorEvent(exc))
        except asyncio.CancelledError:
            pump.stopped(reply_id)
            raise
        except Exception:
            log.exception("unexpected error in a background response")
            pump.feed(ErrorEvent(INTERNAL))
        finally:
            pump.stopped(reply_id)


def _background(
    services: Services, principal: Principal, request: ChatRequest, echo: Echo, stream: bool
) -> Response:
    assert request.reply_id is not None
    resp_id = response_id(request.reply_id)
    build = _builder(request)(resp_id, echo)
    run = Run(resp_id, principal.user_id, build.response, background=True, current=build.current)
    services.responses.runs.start(run)
    run.add(build.start(queued=True))
    events = services.chat.stream(principal, request)
    pump = _Pump(services, build, run)
    run.task = asyncio.get_running_loop().create_task(_detached(events, pump, request.reply_id))
    if stream:
        return SSEResponse(_follow(run, -1))
    return json_response(run.events[1]["response"])


async def _answer(services: Services, principal: Principal, body: dict[str, Any]) -> Response:
    try:
        request, echo = await _build(services, principal, body)
        if body.get("background") is True:
            return _background(services, principal, request, echo, bool(body.get("stream")))
        reserved: list[Reservation] = []
        events = services.chat.stream(principal, request, on_reserved=reserved.append)
        first = await anext(events)
    except ChatgateError as exc:
        return error_response(exc)
    assert request.reply_id is not None
    resp_id = response_id(request.reply_id) if echo.store else "resp_" + new_id()
    build = _builder(request)(resp_id, echo)
    run = None
    if echo.store:
        run = Run(resp_id, principal.user_id, build.response, current=build.current)
        services.responses.runs.start(run)
    pump = _Pump(services, build, run)
    headers = rate_headers(reserved[0].facts) if reserved else {}
    _, left_out = chat_params(body)
    relayed = isinstance(first, Delta) and bool(first.extra)
    if left_out and not relayed:
        headers[LEFT_OUT_HEADER] = ", ".join(left_out)
    if body.get("stream"):
        return SSEResponse(_sse(first, events, pump, request.reply_id), headers=headers)
    response = await _whole(first, events, pump, request.reply_id)
    if headers:
        response.headers.update(headers)
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


async def _follow(run: Run, after: int) -> AsyncGenerator[bytes, None]:
    async for event in run.follow(after):
        yield _sse_line(event)


async def _replay(events: list[dict[str, Any]], after: int) -> AsyncGenerator[bytes, None]:
    for event in events:
        if event["sequence_number"] > after:
            yield _sse_line(event)


class _Watched(Response):
    """A streamed answer to a plain route, stopped when its client leaves."""

    def __init__(self, inner: SSEResponse) -> None:
        self.inner = inner
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with ClientWatch(receive):
            await self.inner(scope, receive, send)


async def _run_of(request: Request, principal: Principal, resp_id: str) -> Run | None:
    """A run of the caller's (an administrator may read anyone's, as with conversations); a
    finished one only while it is stored (``core.response_store`` says why)."""
    run = await services_of(request).responses.run(resp_id)
    if run is not None and run.user_id != principal.user_id and not principal.is_admin:
        raise NotFound(f"No response with id {resp_id!r}.", param="response_id")
    return run


async def _stored(request: Request, principal: Principal) -> dict[str, Any]:
    """A stored response rebuilt from its reply message, the tree around it and its record."""
    resp_id = request.path_params["response_id"]
    message_id = message_id_of(resp_id)
    services = services_of(request)
    chats = services.conversations
    state = await chats.holding(principal, message_id)
    row = await chats.stored_message(principal, message_id)
    if row.role != "assistant":
        raise NotFound(f"No response with id {resp_id!r}.", param="response_id")
    record = await services.responses.records.get(message_id) or {}
    question = state.nodes.get(row.parent_id) if row.parent_id else None
    before = state.nodes.get(question.parent_id) if question and question.parent_id else None
    previous = response_id(before.id) if before is not None and before.role == "assistant" else None
    if record:
        previous = record.get("previous_response_id")
    echo = Echo(row.model or "", record.get("instructions"), previous, state.id, True, record)
    usage = Usage(row.prompt_tokens, row.completion_tokens)
    finish = row.finish_reason or "stop"
    status = "failed" if finish == "error" else status_of(finish)
    if finish == "cancelled":
        status = "cancelled"
    output = record.get("output") or (
        stored_output(resp_id, row.content, finish) + record.get("calls", [])
    )
    data = response_object(resp_id, echo, int(row.created_at), status, output, usage, finish)
    if status == "failed":
        data["error"] = error_object(INTERNAL)
    return data


def _starting_after(request: Request) -> int:
    raw = request.query_params.get("starting_after", "-1")
    number = int(raw) if (raw.isascii() and raw.isdigit()) or raw == "-1" else None
    if number is None:
        raise InvalidRequest(
            "'starting_after' is an event's sequence number.", param="starting_after"
        )
    return number


async def retrieve_response(request: Request) -> Response:
    """``GET /v1/responses/{id}``: a response, running or finished; with ``stream=true`` its
    events after ``starting_after``, then live until it ends. Another user's is not found."""
    try:
        principal = await authenticate(request)
        resp_id = request.path_params["response_id"]
        stream = request.query_params.get("stream", "false").lower() == "true"
        after = _starting_after(request)
        run = await _run_of(request, principal, resp_id)
        if run is not None:
            if stream:
                return _Watched(SSEResponse(_follow(run, after)))
            return json_response(run.now())
        stored = await _stored(request, principal)
    except ChatgateError as exc:
        return error_response(exc)
    if stream:
        return _Watched(SSEResponse(_replay(replayed_events(stored), after)))
    return json_response(stored)


async def delete_response(request: Request) -> Response:
    """``DELETE /v1/responses/{id}``: the reply and every message after it leave the tree
    (a background response still running is stopped first)."""
    try:
        principal = await authenticate(request)
        resp_id = request.path_params["response_id"]
        message_id = message_id_of(resp_id)
        services = services_of(request)
        run = await _run_of(request, principal, resp_id)
        if run is not None and not run.finished:
            if run.task is None:
                raise Conflict("The response is still being written; delete it once it ends.")
            await _stop(run)
        chats = services.conversations
        row = await chats.stored_message(principal, message_id)
        if row.role != "assistant":
            raise NotFound(f"No response with id {resp_id!r}.", param="response_id")
        await chats.delete_branch(principal, message_id)
        services.responses.records.forget(message_id)
        services.responses.runs.drop(resp_id)
    except ChatgateError as exc:
        return error_response(exc)
    return json_response({"id": resp_id, "object": "response.deleted", "deleted": True})


async def _stop(run: Run) -> None:
    task = run.task
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def cancel_response(request: Request) -> Response:
    """``POST /v1/responses/{id}/cancel``: a background response stops, keeping what it had;
    cancelling one that has ended answers it as it is. Others cannot be cancelled (400)."""
    try:
        principal = await authenticate(request)
        resp_id = request.path_params["response_id"]
        run = await _run_of(request, principal, resp_id)
        if run is not None and run.background:
            await _stop(run)
            return json_response(run.response)
        stored = await _stored(request, principal)
        if stored.get("background"):
            return json_response(stored)
        raise InvalidRequest("Only responses created with background=true can be cancelled.")
    except ChatgateError as exc:
        return error_response(exc)


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "20")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 100:
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
