"""The native WebSocket protocol at ``/api/v1/ws``: JSON frames, several requests at once.

Client frames: ``{"type": "auth", "token"}`` (unless the handshake carried a Bearer header,
``?token=`` or, from this site's own pages, the login cookie), ``{"type": "chat", "id", "model",
"messages" | "prompt", "conversation_id", "parent_id", …OpenAI parameters}``,
``{"type": "cancel", "id"}`` and ``{"type": "ping"}``.
Server frames, each with the request's ``id``: ``delta``, ``done``, ``error`` and ``pong``.
A cancelled request ends with an ``error`` whose code is ``cancelled``; a closed socket cancels
everything on it. In both cases the partial reply is kept.

A chat frame with ``"resumable": true`` runs its reply as a job (``core/replies.py``): a ``reply``
frame names it first, its ``delta``/``done``/``error`` frames carry ``seq``, and a closed socket
only stops the following; ``{"type": "resume", "id", "reply_id", "after"}`` follows it again
after event ``after``, on any socket of its owner. ``cancel`` stops the reply itself, which
then ends with a ``done`` frame whose finish reason is ``cancelled``.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from typing import Any

import orjson
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from chatgate.core.errors import (
    AuthenticationFailed,
    Cancelled,
    ChatgateError,
    InvalidRequest,
    LimitExceeded,
    NotFound,
)
from chatgate.core.events import ChatEvent, ChatRequest, Delta, Done
from chatgate.core.replies import stored_error
from chatgate.core.reply_store import ReplyEvent, ReplyInfo
from chatgate.transports.http_common import services_of
from chatgate.transports.native_replies import ReplyOut
from chatgate.transports.openai_http import parse_chat
from chatgate.transports.ws_session import Session, SocketGone, handshake_token

RequestId = str | int | None
log = logging.getLogger("chatgate.ws")
# What a request that failed in a way nobody foresaw is told; the traceback goes to the log.
UNFORESEEN = ChatgateError("Something went wrong on our side; the error has been logged.")
_NOT_PARAMS = ("type", "id", "stream", "stream_options", "prompt", "resumable")


# ---- the one place errors become frames -----------------------------------------------------


def error_frame(rid: RequestId, exc: ChatgateError) -> str:
    frame: dict[str, Any] = {"type": "error", "id": rid, "code": exc.code, "message": exc.message}
    if exc.param is not None:
        frame["param"] = exc.param
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        frame["retry_after"] = round(retry_after, 3)
    return _dump(frame)


# ---- parsing and rendering ------------------------------------------------------------------


def _dump(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


def parse_request(frame: dict[str, Any]) -> ChatRequest:
    """A ``chat`` frame as a ``ChatRequest``: the OpenAI body rules, always streamed."""
    body = {k: v for k, v in frame.items() if k not in _NOT_PARAMS}
    prompt = frame.get("prompt")
    if "messages" not in frame and prompt is not None:
        if not isinstance(prompt, str) or not prompt:
            raise InvalidRequest("'prompt' must be a non-empty string.", param="prompt")
        body["messages"] = [{"role": "user", "content": prompt}]
    request = parse_chat(body)  # the whole shape checked, as for HTTP
    request.stream = True
    request.wants_raw = False
    request.client_usage = False
    return request


def render(rid: RequestId, event: ChatEvent) -> str | None:
    if isinstance(event, Delta):
        if not event.text and not event.tool_calls:
            return None
        frame: dict[str, Any] = {"type": "delta", "id": rid, "text": event.text}
        if event.tool_calls:
            frame["tool_calls"] = event.tool_calls
        return _dump(frame)
    if isinstance(event, Done):
        return _dump(
            {
                "type": "done",
                "id": rid,
                "conversation_id": event.conversation_id,
                "message_id": event.message_id,
                "parent_id": event.parent_id,
                "finish_reason": event.finish_reason,
                "model": event.model,
                "usage": event.usage.as_openai(),
            }
        )
    return error_frame(rid, event.error)


def reply_frame(rid: RequestId, info: ReplyInfo) -> str:
    return _dump({**ReplyOut.of(info).model_dump(), "type": "reply", "id": rid})


def render_kept(rid: RequestId, event: ReplyEvent) -> str:
    """An event of a resumable reply, with its number."""
    if event.kind == "error":
        frame = orjson.loads(error_frame(rid, stored_error(event.data)))
    else:
        frame = {**event.data, "type": event.kind, "id": rid}
    frame["seq"] = event.seq
    return _dump(frame)


def _request_id(frame: dict[str, Any]) -> RequestId:
    rid = frame.get("id")
    if rid is None or (isinstance(rid, str) and 0 < len(rid) <= 128):
        return rid
    if isinstance(rid, int) and not isinstance(rid, bool):
        return rid
    raise InvalidRequest("'id' must be a string of 1-128 characters or an integer.", param="id")


# ---- one connection -------------------------------------------------------------------------


class Connection:
    """The protocol state of one socket: its credential and the frames it sends."""

    def __init__(self, session: Session, token: str | None) -> None:
        self.session = session
        self.token = token
        self.replies: dict[RequestId, str] = {}
        """The resumable replies followed on this socket, by request id."""

    async def handle(self, frame: str | bytes) -> None:
        rid: RequestId = None
        try:
            if isinstance(frame, bytes):
                raise InvalidRequest("Binary frames are not accepted: send JSON text frames.")
            too_large = self.session.too_large(frame)
            if too_large is not None:
                raise too_large
            try:
                data = orjson.loads(frame)
            except orjson.JSONDecodeError:
                raise InvalidRequest("The frame is not valid JSON.") from None
            if not isinstance(data, dict):
                raise InvalidRequest("A frame must be a JSON object.")
            rid = _request_id(data)
            await self._dispatch(data, rid)
        except ChatgateError as exc:
            await self.session.send(error_frame(rid, exc))
        except Exception:
            log.exception("a WebSocket frame could not be handled")
            await self.session.send(error_frame(rid, UNFORESEEN))

    async def _dispatch(self, data: dict[str, Any], rid: RequestId) -> None:
        kind = data.get("type")
        if kind == "chat":
            self._chat(data, rid)
        elif kind == "cancel":
            reply_id = self.replies.get(rid)
            if reply_id is not None and self.token is not None:
                principal = await self.session.services.accounts.authenticate(self.token)
                await self.session.services.replies.cancel(principal, reply_id)
            elif rid is None or not self.session.cancel(rid):
                raise NotFound("No request with this id is in flight.", param="id")
        elif kind == "resume":
            await self._resume(data, rid)
        elif kind == "ping":
            await self.session.send(_dump({"type": "pong", "id": rid}))
        elif kind == "auth":
            await self._auth(data, rid)
        else:
            raise InvalidRequest(
                "'type' must be one of chat, cancel, resume, ping, auth.", param="type"
            )

    async def _auth(self, data: dict[str, Any], rid: RequestId) -> None:
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise InvalidRequest("'token' must be a non-empty string.", param="token")
        principal = await self.session.services.accounts.authenticate(token)
        self.token = token
        await self.session.send(
            _dump({"type": "auth", "id": rid, "ok": True, "user": principal.username})
        )

    def _chat(self, data: dict[str, Any], rid: RequestId) -> None:
        if self.token is None:
            raise AuthenticationFailed("Authenticate first: send {'type': 'auth', 'token': KEY}.")
        if rid is None:
            raise InvalidRequest("A chat frame needs an 'id'.", param="id")
        if self.session.running(rid):
            raise InvalidRequest("A request with this id is already in flight.", param="id")
        if self.session.busy:
            raise LimitExceeded("Too many requests in flight on this socket.", retry_after=1.0)
        request = parse_request(data)
        crash = error_frame(rid, UNFORESEEN)
        resumable = data.get("resumable", False)
        if not isinstance(resumable, bool):
            raise InvalidRequest("'resumable' must be true or false.", param="resumable")
        work = self._job if resumable else self._stream
        self.session.start(rid, work(rid, request, self.token), crash)

    async def _resume(self, data: dict[str, Any], rid: RequestId) -> None:
        if self.token is None:
            raise AuthenticationFailed("Authenticate first: send {'type': 'auth', 'token': KEY}.")
        reply_id, after = data.get("reply_id"), data.get("after", 0)
        if not isinstance(reply_id, str) or not 0 < len(reply_id) <= 100:
            raise InvalidRequest("'reply_id' must be a reply's id.", param="reply_id")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise InvalidRequest("'after' must be the last event number received.", param="after")
        if rid is None:
            raise InvalidRequest("A resume frame needs an 'id'.", param="id")
        if self.session.running(rid):
            raise InvalidRequest("A request with this id is already in flight.", param="id")
        services = self.session.services
        principal = await services.accounts.authenticate(self.token)
        info = await services.replies.get(principal, reply_id)
        self.session.start(rid, self._follow(rid, info, after), error_frame(rid, UNFORESEEN))

    async def _job(self, rid: RequestId, request: ChatRequest, token: str) -> None:
        """A resumable reply: started as a job, then followed like any attach."""
        services = self.session.services
        try:
            principal = await services.accounts.authenticate(token)
            info = await services.replies.start(principal, request)
        except ChatgateError as exc:
            await self.session.send(error_frame(rid, exc))
            return
        await self._follow(rid, info, 0)

    async def _follow(self, rid: RequestId, info: ReplyInfo, after: int) -> None:
        replies = self.session.services.replies
        self.replies[rid] = info.reply_id
        try:
            await self.session.send(reply_frame(rid, info))
            async with aclosing(replies.follow(info, after)) as events:
                async for event in events:
                    if event is not None:
                        await self.session.send(render_kept(rid, event))
        finally:
            self.replies.pop(rid, None)

    async def _stream(self, rid: RequestId, request: ChatRequest, token: str) -> None:
        session = self.session
        services = session.services
        try:
            principal = await services.accounts.authenticate(token)
            async with aclosing(services.chat.stream(principal, request)) as events:
                async for event in events:
                    out = render(rid, event)
                    if out is not None:
                        await session.send(out)
        except ChatgateError as exc:
            await session.send(error_frame(rid, exc))
        except asyncio.CancelledError:
            if session.open:
                await session.send(error_frame(rid, Cancelled("The request was cancelled.")))
            raise


async def endpoint(ws: WebSocket) -> None:
    services = services_of(ws)
    await ws.accept()
    session = Session(ws, services, services.settings.websocket_max_in_flight)
    try:
        try:
            connection = Connection(session, handshake_token(ws))
            if connection.token is not None:
                await services.accounts.authenticate(connection.token)
        except ChatgateError as exc:
            await session.send(error_frame(None, exc))
            await session.end(1008, "authentication failed")
            return
        async for frame in session.frames():
            await connection.handle(frame)
    except SocketGone:
        pass
    finally:
        await session.close()


routes = [WebSocketRoute("/api/v1/ws", endpoint)]
