"""Resumable replies over the native API: attach again, list, cancel (``/api/v1/replies``).

A message sent with ``"resumable": true`` runs as a job (``core/replies.py``); its server-sent
events carry ``id: N``, so a client that lost them reattaches with ``Last-Event-ID`` and gets the
rest. Every attach starts with a ``reply`` event (without an id) that says where the reply goes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from chatgate.core.accounts import Principal
from chatgate.core.errors import InvalidRequest
from chatgate.core.events import ChatRequest
from chatgate.core.replies import Replies, stored_error
from chatgate.core.reply_store import ReplyEvent, ReplyInfo
from chatgate.transports.asgi import WatchedReply
from chatgate.transports.http_common import StrictRoute, authenticate, error_body, services_of
from chatgate.transports.sse_response import SSEResponse

router = APIRouter(prefix="/api/v1/replies", tags=["replies"], route_class=StrictRoute)
_STREAMED: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "the reply's events"}
}
_KEEP_ALIVE = b": keep-alive\n\n"

Caller = Annotated[Principal, Depends(authenticate)]


class ReplyOut(BaseModel):
    reply_id: str
    conversation_id: str | None
    parent_id: str | None = Field(description="the question's message id")
    message_id: str | None = Field(description="the id the stored reply gets")
    model: str
    status: Literal["running", "ended"]
    finish_reason: str | None
    last_event_id: int = Field(description="how many events the reply has made so far")
    created_at: float

    @classmethod
    def of(cls, info: ReplyInfo) -> ReplyOut:
        return cls(
            reply_id=info.reply_id,
            conversation_id=info.conversation_id,
            parent_id=info.parent_id,
            message_id=info.message_id,
            model=info.model,
            status="ended" if info.ended else "running",
            finish_reason=info.finish_reason,
            last_event_id=info.last_seq,
            created_at=info.created_at,
        )


class ReplyList(BaseModel):
    data: list[ReplyOut]


def resumable_reply(request: Request, caller: Principal, chat: ChatRequest) -> Response:
    """The reply as a job: the stream the sender reads is one attach among others, and the
    sender leaving stops only its own reading."""
    replies = services_of(request).replies

    async def start() -> Response:
        info = await replies.start(caller, chat)
        return SSEResponse(_events(replies, info, 0))

    return WatchedReply(start)


@router.get("", response_model=ReplyList)
async def list_replies(
    request: Request,
    caller: Caller,
    conversation_id: Annotated[str | None, Query(max_length=64)] = None,
) -> ReplyList:
    """Your replies that are running, or ended a short while ago, newest first."""
    found = await services_of(request).replies.of_user(caller, conversation_id)
    return ReplyList(data=[ReplyOut.of(info) for info in found])


@router.get("/{reply_id}/events", responses=_STREAMED)
async def reply_events(
    reply_id: str,
    request: Request,
    caller: Caller,
    after: Annotated[int | None, Query(ge=0, description="the last event id you have")] = None,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> Response:
    """The reply's events after ``Last-Event-ID`` (or ``after``), then the rest as it comes."""
    replies = services_of(request).replies
    info = await replies.get(caller, reply_id)
    seen = _last_event_id(last_event_id) if last_event_id is not None else (after or 0)

    async def follow() -> Response:
        return SSEResponse(_events(replies, info, seen))

    return WatchedReply(follow)


@router.post("/{reply_id}/cancel", response_model=ReplyOut)
async def cancel_reply(reply_id: str, request: Request, caller: Caller) -> ReplyOut:
    """Stop the reply; what it said so far is kept as the stored reply."""
    return ReplyOut.of(await services_of(request).replies.cancel(caller, reply_id))


def _last_event_id(value: str) -> int:
    if not value.isdigit():
        raise InvalidRequest(
            "Last-Event-ID must be the number of the last event received.", param="Last-Event-ID"
        )
    return int(value)


async def _events(replies: Replies, info: ReplyInfo, after: int) -> AsyncGenerator[bytes, None]:
    yield b"event: reply\ndata: " + ReplyOut.of(info).model_dump_json().encode() + b"\n\n"
    async with aclosing(replies.follow(info, after)) as events:
        async for event in events:
            yield _KEEP_ALIVE if event is None else _rendered(event)


def _rendered(event: ReplyEvent) -> bytes:
    data = error_body(stored_error(event.data)) if event.kind == "error" else event.data
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.kind.encode(), orjson.dumps(data))
