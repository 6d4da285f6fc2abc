"""The core: one chat exchange, whatever transport asked for it.

authorize (the transport hands in a Principal) -> check sizes -> reserve quota -> build context
from the conversation tree -> route to a provider -> relay deltas -> settle usage -> persist the
reply.

Errors before the first event are raised, so a transport can answer with a plain error
response; errors after it are yielded as ``ErrorEvent`` once the partial reply has been kept.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatgate.core.accounts import Principal
from chatgate.core.draining import MESSAGE as SHUTTING_DOWN
from chatgate.core.draining import Drain
from chatgate.core.errors import ChatgateError, LimitExceeded, ShuttingDown
from chatgate.core.events import ChatEvent, ChatRequest, Delta, Done, ErrorEvent, Message, Usage
from chatgate.core.metrics import Metrics
from chatgate.core.quotas import QuotaService, Reservation
from chatgate.core.sizes import check_message_sizes, check_prompt_size, check_sizes
from chatgate.core.tokens import estimate_messages, estimate_tokens
from chatgate.core.usage import Entry, Outcome, UsageRecorder
from chatgate.providers.base import UpstreamCall
from chatgate.providers.router import ModelRegistry, ModelRoute, Served
from chatgate.settings import Settings


class Turn(Protocol):
    """A place in a stored conversation: the context to send and the ids of the new messages."""

    conversation_id: str
    user_message_id: str | None
    reply_id: str
    messages: list[Message]


class ConversationHook(Protocol):
    async def begin(
        self, principal: Principal, request: ChatRequest, route: ModelRoute
    ) -> Turn | None: ...

    def finish(
        self, turn: Turn, text: str, finish_reason: str, usage: Usage, model: str
    ) -> None: ...

    written: Callable[[Turn], Awaitable[None]] | None
    """Awaited before an exchange's end is told, where other processes may be asked for its
    conversation the moment the client learns it: what it stored is in the database by then.
    None where this process serves its conversations alone."""


@dataclass(slots=True)
class _Exchange:
    """Book-keeping for one request while it streams."""

    started_at: float
    principal: Principal
    reservation: Reservation
    route: ModelRoute
    request: ChatRequest
    entry: Entry
    messages: list[Message] = field(default_factory=list)
    turn: Turn | None = None
    served: Served = field(default_factory=Served)
    texts: list[str] = field(default_factory=list)
    started: bool = False
    first_token_at: float | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    settled: bool = False

    def __post_init__(self) -> None:
        self.messages = self.request.messages

    def add(self, piece: Delta) -> None:
        if not self.started:
            self.started = True
            self.first_token_at = time.perf_counter()
        if piece.text:
            self.texts.append(piece.text)
        if piece.finish_reason:
            self.finish_reason = piece.finish_reason
        if piece.usage is not None:
            self.usage = piece.usage

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def final_usage(self) -> Usage:
        """The upstream's own count when it gave one, else an offline estimate."""
        if self.usage is None:
            request = self.request
            if request.kind == "completion":
                prompt = request.prompt
                text = prompt if isinstance(prompt, str) else " ".join(prompt or [])
                prompt_tokens = estimate_tokens(text)
            else:
                prompt_tokens = estimate_messages(self.messages)
            self.usage = Usage(prompt_tokens, estimate_tokens(self.text), estimated=True)
        return self.usage


class ChatService:
    def __init__(
        self,
        models: ModelRegistry,
        quotas: QuotaService,
        usage: UsageRecorder,
        metrics: Metrics,
        settings: Settings,
        conversations: ConversationHook | None = None,
        drain: Drain | None = None,
    ) -> None:
        self.models = models
        self.drain = drain or Drain()
        self.settings = settings
        self.quotas = quotas
        self.usage = usage
        self.metrics = metrics
        self.conversations = conversations
        self._written = conversations.written if conversations is not None else None

    async def stream(
        self,
        principal: Principal,
        request: ChatRequest,
        *,
        on_reserved: Callable[[Reservation], None] | None = None,
        on_begin: Callable[[Turn | None, str], Awaitable[None]] | None = None,
    ) -> AsyncGenerator[ChatEvent, None]:
        """The reply as events. ``on_reserved`` learns the quota reservation (where the caller
        stands against their limits) before the first event, for transports that report it.
        ``on_begin`` learns where the exchange was placed and the model that answers, once the
        question is stored and before the upstream is called (resumable replies announce it)."""
        self._check_sizes(self.settings, request)
        route = self.models.resolve(request.model, principal)
        try:
            reservation = await self.quotas.reserve(principal, route.name)
        except LimitExceeded as exc:
            self.usage.refused(principal, route.name, exc.code)
            raise
        if on_reserved is not None:
            on_reserved(reservation)
        entry = self.usage.begin(principal, route.name, reservation.day)
        ex = _Exchange(time.perf_counter(), principal, reservation, route, request, entry)
        try:
            if self.conversations is not None:
                ex.turn = await self.conversations.begin(principal, request, route)
                if ex.turn is not None:
                    ex.messages = ex.turn.messages
            if on_begin is not None:
                await on_begin(ex.turn, route.name)
            call = UpstreamCall(
                body=self._body(request, ex.messages),
                path="completions" if request.kind == "completion" else "chat/completions",
                wants_raw=request.wants_raw,
                client_usage=request.client_usage,
            )
            # The drain's steps (``core/draining.py``) are taken here, in the one loop between
            # the model and the reply, rather than by a generator of their own around it: the
            # reply waits for the model only inside ``async for`` (``waiting``), so a
            # cancellation there at the deadline comes out of it, and nowhere else.
            drain = self.drain
            reply = drain.enter()
            try:
                async with aclosing(self.models.stream(route, call, ex.served)) as pieces:
                    if drain.ended:
                        raise ShuttingDown(SHUTTING_DOWN)
                    reply.waiting = True
                    async for piece in pieces:
                        reply.waiting = False
                        ex.add(piece)
                        yield piece
                        if drain.ended:
                            raise ShuttingDown(SHUTTING_DOWN)
                        reply.waiting = True
                    reply.waiting = False
            except asyncio.CancelledError:
                if not drain.interrupted(reply):
                    raise
                raise ShuttingDown(SHUTTING_DOWN) from None
            finally:
                drain.leave(reply)
            finish = ex.finish_reason or "stop"
            self._settle(ex, "ok", finish, None)
            if ex.turn is not None and self._written is not None:
                await self._written(ex.turn)
            turn = ex.turn
            yield Done(
                conversation_id=turn.conversation_id if turn else None,
                message_id=turn.reply_id if turn else None,
                parent_id=turn.user_message_id if turn else None,
                finish_reason=finish,
                usage=ex.final_usage(),
                model=route.name,
                created=int(time.time()),
            )
        except ChatgateError as exc:
            self._settle(ex, "error", "error", exc)
            if ex.turn is not None and self._written is not None:
                await self._written(ex.turn)
            if not ex.started:
                raise
            yield ErrorEvent(exc)
        finally:
            if not ex.settled:
                self._settle(ex, "cancelled", "cancelled", None)

    @staticmethod
    def _check_sizes(settings: Settings, request: ChatRequest) -> None:
        """Every transport's messages are held to the stored-message limits here, before the
        quota is taken and before anything is stored or sent upstream."""
        if request.kind == "completion":
            check_prompt_size(settings, request.prompt)
        else:
            check_message_sizes(settings, request.messages)
        if request.system is not None:
            check_sizes(settings, system=request.system)

    def _body(self, request: ChatRequest, messages: list[Message]) -> dict[str, Any]:
        body = dict(request.params)
        body["model"] = request.model
        body["stream"] = request.stream
        if request.kind == "completion":
            body["prompt"] = request.prompt
        else:
            body["messages"] = messages
        return body

    def _settle(self, ex: _Exchange, status: str, finish: str, error: ChatgateError | None) -> None:
        """Close the books on one request: quota, usage row, metrics, stored reply."""
        if ex.settled:
            return
        ex.settled = True
        usage = ex.final_usage() if ex.started or status == "ok" else Usage()
        # A failed request is not counted, as only answered questions were; a reply the client
        # cut is counted with what it received.
        counted = status == "ok" or (status == "cancelled" and ex.started)
        ex.reservation.settle(counted=counted, tokens=usage.total_tokens)
        config = ex.route.config
        outcome = Outcome(
            model=ex.route.name,
            provider=ex.served.provider,
            status=status,
            usage=usage,
            counted=counted,
            latency_ms=(time.perf_counter() - ex.started_at) * 1000,
            first_token_ms=(
                (ex.first_token_at - ex.started_at) * 1000 if ex.first_token_at else None
            ),
            error_code=error.code if error else None,
            finish_reason=finish,
            cost=(
                usage.prompt_tokens * config.input_price
                + usage.completion_tokens * config.output_price
            )
            / 1_000_000,
        )
        self.usage.record(ex.entry, outcome)
        self.metrics.observe(outcome)
        if ex.turn is not None and self.conversations is not None:
            self.conversations.finish(ex.turn, ex.text, finish, usage, ex.route.name)
