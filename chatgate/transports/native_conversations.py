"""The native conversations API under ``/api/v1/conversations`` (documented at ``/docs``).

Thin: each route authenticates, calls ``ConversationService`` or ``ChatService.stream`` and
renders the result. Replies stream as server-sent events: ``delta`` events with text, then one
``done`` event with the ids (or one ``error`` event); with ``"stream": false`` one JSON body.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import asdict
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from chatgate.core.accounts import Principal
from chatgate.core.conversation_queries import ConversationSummary, ConversationTree, MessageView
from chatgate.core.conversations import ContextPreview, ContinueRequest
from chatgate.core.errors import InvalidRequest, PayloadTooLarge
from chatgate.core.events import ChatEvent, ChatRequest, Delta, Done, ErrorEvent
from chatgate.core.replies import done_data
from chatgate.core.validation import MAX_INT
from chatgate.transports.account_schemas import Incoming
from chatgate.transports.asgi import WatchedReply
from chatgate.transports.http_common import (
    INTERNAL,
    StrictRoute,
    authenticate,
    check_sizes,
    error_body,
    services_of,
)
from chatgate.transports.native_replies import resumable_reply
from chatgate.transports.sse_response import SSEResponse

log = logging.getLogger("chatgate.http")
router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"], route_class=StrictRoute)
_STREAMED: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "events, or JSON"}
}

Caller = Annotated[Principal, Depends(authenticate)]
# The import route's body limit as the framework enforces it: ``max_import_bytes`` may be at
# most this, and the route holds the body to that setting itself while reading it.
MAX_IMPORT_CEILING = 1 << 30


# ---- wire models ------------------------------------------------------------------------------


Temperature = Annotated[float | None, Field(ge=0, le=2)]
MaxTokens = Annotated[int | None, Field(ge=1, le=MAX_INT)]


class ConversationIn(Incoming):
    title: str | None = Field(default=None, max_length=255)
    system: str | None = None
    model: str | None = None
    temperature: Temperature = None
    max_tokens: MaxTokens = None


class ConversationPatch(Incoming):
    """Fields to change; those left out stay as they are. ``model``, ``temperature`` and
    ``max_tokens`` are what replies use when a request names none; ``null`` clears one."""

    title: str | None = Field(default=None, max_length=255)
    system: str | None = None
    current_leaf_id: str | None = Field(default=None, max_length=64)
    pinned: bool | None = None
    model: str | None = Field(default=None, max_length=128)
    temperature: Temperature = None
    max_tokens: MaxTokens = None

    def reply_settings(self) -> dict[str, Any]:
        """The reply settings the body names, ``null`` ones included (they clear)."""
        return {
            name: getattr(self, name)
            for name in ("model", "temperature", "max_tokens")
            if name in self.model_fields_set
        }


class ConversationOut(BaseModel):
    id: str
    title: str | None
    model: str | None
    system: str | None
    current_leaf_id: str | None
    created_at: float
    updated_at: float
    pinned: bool
    temperature: float | None
    max_tokens: int | None

    @classmethod
    def of(cls, c: ConversationSummary) -> ConversationOut:
        return cls(
            id=c.id,
            title=c.title,
            model=c.model,
            system=c.system_prompt,
            current_leaf_id=c.current_leaf_id,
            created_at=c.created_at,
            updated_at=c.updated_at,
            pinned=c.pinned,
            temperature=c.temperature,
            max_tokens=c.max_tokens,
        )


class MessageOut(BaseModel):
    id: str
    parent_id: str | None
    role: str
    content: str
    model: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    created_at: float

    @classmethod
    def of(cls, m: MessageView) -> MessageOut:
        return cls(
            id=m.id,
            parent_id=m.parent_id,
            role=m.role,
            content=m.content,
            model=m.model,
            finish_reason=m.finish_reason,
            prompt_tokens=m.prompt_tokens,
            completion_tokens=m.completion_tokens,
            created_at=m.created_at,
        )


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]
    current_path: list[str] = Field(description="message ids from the root to the current leaf")

    @classmethod
    def of_tree(cls, tree: ConversationTree) -> ConversationDetail:
        base = ConversationOut.of(tree.conversation).model_dump()
        return cls(
            **base,
            messages=[MessageOut.of(m) for m in tree.messages],
            current_path=tree.current_path,
        )


class ConversationPage(BaseModel):
    data: list[ConversationOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class ImportOut(BaseModel):
    imported: int = Field(description="conversations added")
    skipped: int = Field(description="conversations this user had already imported")
    messages: int = Field(description="messages added")
    ids: list[str] = Field(description="ids of the conversations added")


class ContextMessageOut(BaseModel):
    id: str
    role: str
    tokens: int = Field(description="as the fitting counts it: text and per-message overhead")
    included: bool


class ContextOut(BaseModel):
    conversation_id: str
    leaf_id: str | None = Field(description="the next question would follow this message")
    model: str
    context_window: int
    reply_reserve: int = Field(description="tokens kept free for the reply")
    budget: int = Field(description="context_window - reply_reserve")
    system_tokens: int
    tokens_sent: int = Field(description="system prompt and included messages")
    exact: bool = Field(description="counted by tiktoken (else estimated)")
    max_history_turns: int | None
    included: int
    left_out: int
    messages: list[ContextMessageOut] = Field(description="the path, root first")

    @classmethod
    def of(cls, p: ContextPreview) -> ContextOut:
        entries = [ContextMessageOut(**asdict(e)) for e in p.entries]
        included = sum(1 for e in entries if e.included)
        return cls(
            conversation_id=p.conversation_id,
            leaf_id=p.leaf_id,
            model=p.model,
            context_window=p.context_window,
            reply_reserve=p.reply_reserve,
            budget=p.budget,
            system_tokens=p.system_tokens,
            tokens_sent=p.tokens_sent,
            exact=p.exact,
            max_history_turns=p.max_history_turns,
            included=included,
            left_out=len(entries) - included,
            messages=entries,
        )


class Ask(Incoming):
    """How to answer: the model (default: the conversation's), streaming and sampling."""

    model: str | None = None
    stream: bool = True
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_INT)
    resumable: bool = Field(
        default=False,
        description="run the reply as a job that outlives this connection (see /api/v1/replies)",
    )

    def params(self) -> dict[str, Any]:
        return self.model_dump(include={"temperature", "top_p", "max_tokens"}, exclude_none=True)


class MessageIn(Ask):
    """A question (``content``), or ``continue``: the id of a reply cut at the token limit to
    go on with, the new text streamed and kept with the old as a new version of that reply."""

    content: str | None = Field(default=None, min_length=1)
    parent_id: str | None = Field(
        default=None, max_length=64, description="answer after this message (default: the leaf)"
    )
    system: str | None = Field(default=None, description="system prompt of a new conversation")
    continue_id: str | None = Field(
        default=None,
        alias="continue",
        min_length=1,
        max_length=64,
        description="continue this reply (finish_reason `length`) instead of asking; "
        "no `content`, `parent_id` or `system` with it",
    )


class EditIn(Ask):
    content: str = Field(min_length=1)


class ReplyOut(BaseModel):
    conversation_id: str | None
    message_id: str | None
    parent_id: str | None
    content: str
    finish_reason: str
    model: str
    usage: dict[str, int]


# ---- conversations ----------------------------------------------------------------------------


@router.post("", status_code=201, response_model=ConversationOut)
async def create_conversation(
    body: ConversationIn, request: Request, caller: Caller
) -> ConversationOut:
    check_sizes(services_of(request).settings, system=body.system)
    conversations = services_of(request).conversations
    state = await conversations.create(
        caller,
        title=body.title,
        system_prompt=body.system,
        model=body.model,
        temperature=body.temperature,
        max_tokens=body.max_tokens,
    )
    return ConversationOut.of(await conversations.summary(caller, state.id))


@router.post(
    "/import",
    response_model=ImportOut,
    max_body_size=MAX_IMPORT_CEILING,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "ChatGPT's data export: the .zip as downloaded, or its "
            "conversations.json; at most `max_import_bytes`.",
            "content": {
                "application/zip": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
)
async def import_conversations(request: Request, caller: Caller) -> ImportOut:
    """Import a ChatGPT export for the caller, keeping its branches and titles; the same export
    imported again adds nothing."""
    limit = services_of(request).settings.max_import_bytes
    raw = await read_upload(request, limit)
    result = await services_of(request).conversations.import_upload(caller, raw, limit)
    return ImportOut(
        imported=result.imported, skipped=result.skipped, messages=result.messages, ids=result.ids
    )


async def read_upload(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to be larger than ``limit``."""
    too_large = PayloadTooLarge(
        f"The upload is larger than {limit} bytes (the server's max_import_bytes)."
    )
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise too_large
        parts.append(part)
    if not size:
        raise InvalidRequest("Send the export as the request body.", param="file")
    return b"".join(parts)


@router.get("", response_model=ConversationPage)
async def list_conversations(
    request: Request,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    q: Annotated[str | None, Query(max_length=500, description="words to search for")] = None,
    pinned: Annotated[
        bool | None, Query(description="only pinned (true) or unpinned (false) ones")
    ] = None,
    pinned_first: Annotated[
        bool, Query(description="pinned ones first, then the rest, in one paged list")
    ] = False,
) -> ConversationPage:
    """Your conversations, newest first; ``q`` searches titles and messages."""
    page = await services_of(request).conversations.page(
        caller.user_id,
        limit=limit,
        cursor=cursor,
        query=q,
        pinned=pinned,
        pinned_first=pinned_first,
    )
    return ConversationPage(
        data=[ConversationOut.of(c) for c in page.items], next_cursor=page.next_cursor
    )


@router.get("/{conversation_id}", response_model=ConversationDetail)
async def get_conversation(
    conversation_id: str, request: Request, caller: Caller
) -> ConversationDetail:
    tree = await services_of(request).conversations.tree(caller, conversation_id)
    return ConversationDetail.of_tree(tree)


@router.patch("/{conversation_id}", response_model=ConversationOut)
async def change_conversation(
    conversation_id: str, body: ConversationPatch, request: Request, caller: Caller
) -> ConversationOut:
    """Rename, change the system prompt, make another message the current leaf, pin or unpin,
    or change the model, temperature and max_tokens replies use by default."""
    check_sizes(services_of(request).settings, system=body.system)
    conversations = services_of(request).conversations
    await conversations.change(
        caller,
        conversation_id,
        title=body.title,
        system_prompt=body.system,
        leaf_id=body.current_leaf_id,
        pinned=body.pinned,
        reply_settings=body.reply_settings(),
    )
    return ConversationOut.of(await conversations.summary(caller, conversation_id))


@router.get("/{conversation_id}/context", response_model=ContextOut)
async def context_preview(
    conversation_id: str,
    request: Request,
    caller: Caller,
    leaf_id: Annotated[
        str | None, Query(max_length=64, description="default: the current leaf")
    ] = None,
    model: Annotated[
        str | None, Query(max_length=128, description="default: the conversation's")
    ] = None,
    max_tokens: Annotated[
        int | None, Query(ge=1, le=MAX_INT, description="default: the conversation's")
    ] = None,
) -> ContextOut:
    """Which messages of the path to ``leaf_id`` the next question would be sent with: the
    newest ones that fit the model's context window, as a reply fits them."""
    preview = await services_of(request).conversations.preview(
        caller, conversation_id, leaf_id=leaf_id, model=model, max_tokens=max_tokens
    )
    return ContextOut.of(preview)


@router.delete("/{conversation_id}", status_code=204)
async def delete_conversation(conversation_id: str, request: Request, caller: Caller) -> Response:
    await services_of(request).conversations.delete(caller, conversation_id)
    return Response(status_code=204)


@router.get("/{conversation_id}/export")
async def export_conversation(
    conversation_id: str,
    request: Request,
    caller: Caller,
    format: Annotated[Literal["md", "json"], Query()] = "md",
) -> Response:
    """Markdown of the current path, or JSON of the whole tree."""
    text = await services_of(request).conversations.export(caller, conversation_id, format)
    media = "text/markdown; charset=utf-8" if format == "md" else "application/json"
    disposition = f'attachment; filename="conversation-{conversation_id[:36]}.{format}"'
    return Response(text, media_type=media, headers={"content-disposition": disposition})


# ---- messages ---------------------------------------------------------------------------------


@router.post("/{conversation_id}/messages", responses=_STREAMED)
async def post_message(
    conversation_id: str, body: MessageIn, request: Request, caller: Caller
) -> Response:
    """Send a message (as a child of ``parent_id``, or of the leaf) and get the reply;
    ``new`` as the id starts a conversation. With ``continue`` instead of ``content``, go on
    with a reply cut at the token limit: the reply streams only the new text, and the message
    it is stored as (``message_id``) holds the old text and the new."""
    if body.continue_id is not None:
        return await _continue(request, caller, conversation_id, body, body.continue_id)
    if body.content is None:
        raise InvalidRequest("Send the message as content (or continue a reply).", param="content")
    check_sizes(services_of(request).settings, content=body.content, system=body.system)
    message = {"role": "user", "content": body.content}
    return await _exchange(
        request,
        caller,
        conversation_id,
        body,
        [message],
        parent_id=body.parent_id,
        system=body.system,
    )


async def _continue(
    request: Request, caller: Principal, conversation_id: str, body: MessageIn, reply_id: str
) -> Response:
    extra = [name for name in ("content", "parent_id", "system") if getattr(body, name) is not None]
    if extra:
        raise InvalidRequest(
            f"continue goes on with the reply itself: leave out {extra[0]}.", param=extra[0]
        )
    return await _exchange(
        request, caller, conversation_id, body, [], kind=ContinueRequest, continue_id=reply_id
    )


@router.post("/{conversation_id}/messages/{message_id}/regenerate", responses=_STREAMED)
async def regenerate(
    conversation_id: str, message_id: str, request: Request, caller: Caller, body: Ask | None = None
) -> Response:
    """A new reply to the same question, as a sibling of ``message_id`` (a reply, or the
    question it answered)."""
    return await _exchange(
        request,
        caller,
        conversation_id,
        body or Ask(),
        [],
        parent_id=message_id,
        regenerate=True,
    )


@router.post("/{conversation_id}/messages/{message_id}/edit", responses=_STREAMED)
async def edit(
    conversation_id: str, message_id: str, body: EditIn, request: Request, caller: Caller
) -> Response:
    """Send a changed question as a new sibling of the user message ``message_id``."""
    check_sizes(services_of(request).settings, content=body.content)
    message = {"role": "user", "content": body.content}
    return await _exchange(request, caller, conversation_id, body, [message], edit_id=message_id)


async def _exchange(
    request: Request,
    caller: Principal,
    conversation_id: str,
    ask: Ask,
    messages: list[dict[str, Any]],
    kind: type[ChatRequest] = ChatRequest,
    **place: Any,
) -> Response:
    """The reply, made as it is sent: from then on the client leaving cancels the upstream call
    (and its retries) at once, unless the reply is resumable."""
    if ask.resumable and not ask.stream:
        raise InvalidRequest("A resumable reply is streamed.", param="resumable")
    services = services_of(request)
    model = await services.conversations.model_for(caller, conversation_id, ask.model)
    chat = kind(
        model=model,
        messages=messages,
        stream=ask.stream,
        params=await services.conversations.params_for(caller, conversation_id, ask.params()),
        conversation_id=conversation_id,
        **place,
    )
    if ask.resumable:
        return resumable_reply(request, caller, chat)

    async def reply() -> Response:
        events = services.chat.stream(caller, chat)
        first = await anext(events)
        if ask.stream:
            return SSEResponse(_sse(first, events))
        return await _whole(first, events)

    return WatchedReply(reply)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def _sse(
    first: ChatEvent, events: AsyncGenerator[ChatEvent, None]
) -> AsyncGenerator[bytes, None]:
    async with aclosing(events):
        event: ChatEvent | None = first
        try:
            while event is not None:
                if isinstance(event, Delta):
                    if event.text:
                        yield _event("delta", {"text": event.text})
                elif isinstance(event, Done):
                    yield _event("done", done_data(event))
                    return
                elif isinstance(event, ErrorEvent):
                    yield _event("error", error_body(event.error))
                    return
                event = await anext(events, None)
        except Exception:
            log.exception("unexpected error while streaming a reply")
            yield _event("error", error_body(INTERNAL))


async def _whole(first: ChatEvent, events: AsyncGenerator[ChatEvent, None]) -> Response:
    texts: list[str] = []
    async with aclosing(events):
        event: ChatEvent | None = first
        while event is not None:
            if isinstance(event, Delta):
                texts.append(event.text)
            elif isinstance(event, ErrorEvent):
                raise event.error
            elif isinstance(event, Done):
                reply = ReplyOut(content="".join(texts), **done_data(event))
                return Response(reply.model_dump_json(), media_type="application/json")
            event = await anext(events, None)
    raise RuntimeError("the chat stream ended without a Done event")
