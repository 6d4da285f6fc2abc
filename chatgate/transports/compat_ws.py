"""The older programs' WebSocket protocols, so that their clients work unchanged.

``/compat/ws/seq``: JSON ``{"seq", "data": {"query" | "messages", "model", "origin_stream",
"openai_parameter", …}}`` answered by ``{"code", "msg", "seq", "data": {"consume_time",
"finish_reason", "contents"}}``; with ``origin_stream: false`` each message holds whole short
sentences. Frames are parsed as JSON and checked field by field, never evaluated. The last
message of every request, an error included, has a ``finish_reason`` (its clients' only end
marker); the same ``seq`` sent again while it runs is answered after it, as the original did.

``/compat/ws/ask``: text frames ``<|ask|>$CONVERSATION$PARENT$PROMPT`` answered by text pieces
then ``<|end|>$conversation_id$parent_id``, or ``<|err|>$reason``; one question at a time.

Both accept a key on the handshake (``Authorization: Bearer`` or ``?token=``, or the login
cookie from this site's own pages); without one the caller is the operator's anonymous user, or
is refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing
from typing import Any

import orjson
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from chatgate.core.accounts import Principal
from chatgate.core.errors import ChatgateError, InvalidRequest, LimitExceeded
from chatgate.core.events import ChatRequest, Delta, Done
from chatgate.core.sentences import SentenceSplitter
from chatgate.services import Services
from chatgate.transports import compat
from chatgate.transports.compat_seq import SeqRequest, parse_seq
from chatgate.transports.http_common import services_of
from chatgate.transports.ws_session import Session, SocketGone, handshake_token

log = logging.getLogger("chatgate.compat")
UNFORESEEN = ChatgateError(compat.INTERNAL)


class Caller:
    """Who is on a compatibility socket; a key is checked again for each request."""

    def __init__(self, services: Services, token: str | None, principal: Principal) -> None:
        self.services = services
        self.token = token
        self.principal = principal

    @classmethod
    async def of(cls, services: Services, token: str | None) -> Caller:
        return cls(services, token, await compat.compat_principal(services, token))

    async def current(self) -> Principal:
        if self.token is None:
            return self.principal
        return await self.services.accounts.authenticate(self.token)


async def _serve(ws: WebSocket, protocol: type[SeqProtocol] | type[AskProtocol]) -> None:
    """Accept, identify the caller (refusing in the protocol's shape), then relay frames."""
    services = services_of(ws)
    await ws.accept()
    in_flight = 1 if protocol is AskProtocol else services.settings.websocket_max_in_flight
    session = Session(ws, services, in_flight)
    try:
        try:
            caller = await Caller.of(services, handshake_token(ws))
        except ChatgateError as exc:
            await session.send(protocol.refusal(exc))
            await session.end(1008, "authentication failed")
            return
        handler = protocol(session, caller)
        async for frame in session.frames():
            await handler.handle(frame)
    except SocketGone:
        pass
    finally:
        await session.close()


# ---- seq ------------------------------------------------------------------------------------


def seq_message(seq: Any, started: float, contents: str, finish: str | None, **more: Any) -> str:
    """The one shape of every seq message; ``code``/``msg`` may be overridden for errors."""
    data: dict[str, Any] = {
        "consume_time": f"{time.perf_counter() - started:.2f}",
        "finish_reason": finish,
        "contents": contents,
    }
    head = {"code": more.pop("code", 0), "msg": more.pop("msg", "ok"), "seq": seq}
    data.update({k: v for k, v in more.items() if v is not None})
    return orjson.dumps({**head, "data": data}).decode()


def seq_error(seq: Any, exc: ChatgateError, started: float | None = None) -> str:
    """The one place errors become seq messages: ``code`` is the HTTP status of the error, and
    ``data.finish_reason`` is ``stop``, because clients end a reply on it alone."""
    began = time.perf_counter() if started is None else started
    return seq_message(seq, began, "", "stop", code=exc.status, msg=exc.message)


def seq_reply(seq: Any, started: float, contents: str, finish: str | None, **ids: Any) -> str:
    return seq_message(seq, started, contents, finish, **ids)


class SeqProtocol:
    @staticmethod
    def refusal(exc: ChatgateError) -> str:
        return seq_error(None, exc)

    def __init__(self, session: Session, caller: Caller) -> None:
        self.session = session
        self.caller = caller
        self.count = 0
        self.latest: dict[str | int, asyncio.Task[None]] = {}

    async def handle(self, frame: str | bytes) -> None:
        seq: Any = None
        started = time.perf_counter()
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
            if isinstance(data, dict) and isinstance(data.get("seq"), str | int):
                seq = data["seq"]
            parsed = parse_seq(data, compat.compat_model(self.session.services))
            if self.session.busy:
                raise LimitExceeded("Too many requests are running on this socket.", retry_after=1)
            self._start(parsed, started)
        except ChatgateError as exc:
            await self.session.send(seq_error(seq, exc, started))
        except Exception:
            log.exception("a seq frame could not be handled")
            await self.session.send(seq_error(seq, UNFORESEEN, started))

    def _start(self, parsed: SeqRequest, started: float) -> None:
        """Run the request; one with the same ``seq`` as a running one waits for it to end."""
        seq = parsed.seq
        self.count += 1
        work = self._after(self.latest.get(seq), parsed, started)
        task = self.session.start((seq, self.count), work, seq_error(seq, UNFORESEEN, started))
        self.latest[seq] = task
        task.add_done_callback(lambda done: self._forget(seq, done))

    def _forget(self, seq: str | int, task: asyncio.Task[None]) -> None:
        if self.latest.get(seq) is task:
            del self.latest[seq]

    async def _after(
        self, previous: asyncio.Task[None] | None, parsed: SeqRequest, started: float
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        await self._stream(parsed, started)

    async def _stream(self, parsed: SeqRequest, started: float) -> None:
        send, seq = self.session.send, parsed.seq
        splitter = None if parsed.origin_stream else SentenceSplitter()
        try:
            principal = await self.caller.current()
            events = self.session.services.chat.stream(principal, parsed.request)
            async with aclosing(events):
                async for event in events:
                    if isinstance(event, Delta):
                        pieces = splitter.feed(event.text) if splitter else [event.text]
                        for piece in pieces:
                            if piece:
                                await send(seq_reply(seq, started, piece, None))
                    elif isinstance(event, Done):
                        rest = splitter.flush() if splitter else ""
                        await send(self._last(parsed, started, rest, event))
                    else:
                        await send(seq_error(seq, event.error, started))
        except ChatgateError as exc:
            await send(seq_error(seq, exc, started))

    def _last(self, parsed: SeqRequest, started: float, rest: str, done: Done) -> str:
        finish = "length" if done.finish_reason == "length" else "stop"
        return seq_reply(
            parsed.seq,
            started,
            rest,
            finish,
            conversation_id=done.conversation_id,
            message_id=done.message_id,
            parent_id=done.parent_id,
        )


async def seq_endpoint(ws: WebSocket) -> None:
    await _serve(ws, SeqProtocol)


# ---- ask ------------------------------------------------------------------------------------


class AskProtocol:
    @staticmethod
    def refusal(exc: ChatgateError) -> str:
        return compat.err_line(exc)

    def __init__(self, session: Session, caller: Caller) -> None:
        self.session = session
        self.caller = caller

    async def handle(self, frame: str | bytes) -> None:
        try:
            if isinstance(frame, bytes):
                raise InvalidRequest(
                    "binary frames are not accepted; send <|ask|>$conversation$parent$prompt"
                )
            too_large = self.session.too_large(frame)
            if too_large is not None:
                raise too_large
            request = compat.parse_ask(frame, compat.compat_model(self.session.services))
            if self.session.busy:
                raise InvalidRequest("a reply is still streaming: wait for <|end|>")
            crash = compat.err_line(UNFORESEEN)
            self.session.start("ask", self._stream(request), crash)
        except ChatgateError as exc:
            await self.session.send(compat.err_line(exc))
        except Exception:
            log.exception("an ask frame could not be handled")
            await self.session.send(compat.err_line(UNFORESEEN))

    async def _stream(self, request: ChatRequest) -> None:
        services = self.session.services
        async with aclosing(compat.ask_lines(services, self.caller.current, request)) as lines:
            async for line in lines:
                await self.session.send(line)


async def ask_endpoint(ws: WebSocket) -> None:
    await _serve(ws, AskProtocol)


routes = [
    WebSocketRoute("/compat/ws/seq", seq_endpoint),
    WebSocketRoute("/compat/ws/ask", ask_endpoint),
]
