"""Replies as jobs, not connections.

A resumable reply runs in a task of its own, detached from the request that asked for it: each
event it makes is numbered and kept in a ``ReplyStore``, and any number of clients may attach to
it, leave and come back, reading the events after the last one they saw. A reply that nobody
watches goes on for a grace period (a page that reloads comes back within it) and is then
cancelled; cancelling keeps the partial reply, as the stop button needs. Only the reply's
owner may attach to it or cancel it; its id is random and never a conversation's.

With a store shared by several instances, the process making a reply holds a lease on it. When
that process dies, the reply is ended by whichever instance notices first: a follower of it
(``follow``), or, when nobody follows it, the sweep every serving instance makes once a lease
period (``sweep``). Either way its text is stored once and its stream ends with a
``producer_lost`` error, so a client that comes back later sees how it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any

from chatgate.core.accounts import Principal
from chatgate.core.chat import ChatService, Turn
from chatgate.core.errors import ChatgateError, NotFound
from chatgate.core.events import ChatRequest, Delta, Done, ErrorEvent, Usage
from chatgate.core.ids import new_id
from chatgate.core.reply_store import EventKind, ReplyEvent, ReplyInfo, ReplyStore
from chatgate.core.tokens import estimate_messages, estimate_tokens
from chatgate.settings import ReplySettings

log = logging.getLogger("chatgate.replies")

REPLY_PREFIX = "rpl_"
KEEP_ALIVE = 15.0
"""Seconds a follower waits for an event before it says it is still there."""
SWEEP_BATCH = 100
"""Lapsed replies claimed at most per look; a full batch is followed by another look at once."""
CANCELLED = "cancelled"
"""The finish reason of a reply that was stopped (by its owner, or with nobody watching)."""


class ProducerLost(ChatgateError):
    """The process that made the reply stopped without ending it (it died, or lost Redis)."""

    code = "producer_lost"
    status = 502


KeepPartial = Callable[[ReplyInfo, str], Awaitable[None]]
"""Stores the text a lost reply had made, as its stored reply (``core/partial_replies.py``)."""


def done_data(done: Done) -> dict[str, Any]:
    """A ``done`` event as plain JSON: the ids that place the reply, how it ended, its usage."""
    return {
        "conversation_id": done.conversation_id,
        "message_id": done.message_id,
        "parent_id": done.parent_id,
        "finish_reason": done.finish_reason,
        "model": done.model,
        "usage": done.usage.as_openai(),
    }


def error_data(error: ChatgateError) -> dict[str, Any]:
    """An error as plain JSON, from which ``stored_error`` makes it again for a transport."""
    return {
        "code": error.code,
        "message": error.message,
        "param": error.param,
        "status": error.status,
        "type": error.error_type,
    }


def stored_error(data: dict[str, Any]) -> ChatgateError:
    error = ChatgateError(str(data.get("message", "")), param=data.get("param"))
    error.code = str(data.get("code", ChatgateError.code))
    error.status = int(data.get("status", ChatgateError.status))
    error.error_type = data.get("type")
    return error


@dataclass(slots=True)
class _Job:
    """A reply running in this process: its task, who watches it and its grace timer."""

    reply_id: str
    task: asyncio.Task[None] | None = None
    info: ReplyInfo | None = None
    turn: Turn | None = None
    texts: list[str] = field(default_factory=list)
    watchers: int = 0
    timer: asyncio.TimerHandle | None = None
    stopping: bool = False
    ending: bool = False
    holding: asyncio.Task[None] | None = None

    def stop(self) -> None:
        """Cancel the reply, unless it is already writing its last event."""
        if self.task is not None and not self.task.done() and not self.ending:
            self.stopping = True
            self.task.cancel()


class Replies:
    """Starts resumable replies and lets their owner follow, list and cancel them."""

    def __init__(
        self,
        chat: ChatService,
        store: ReplyStore,
        settings: ReplySettings,
        keep_partial: KeepPartial | None = None,
        written: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.chat = chat
        self.store = store
        self.grace = settings.grace_seconds
        self.keep = settings.keep_seconds
        self.lease = settings.lease_seconds
        self.keep_partial = keep_partial
        self.written = written
        """Writes what the reply stored at once, before its end is told, when another instance
        may be asked to continue the conversation the moment the client learns it (the writes
        are otherwise batched, and one process's own cache hides them)."""
        # A reply cannot outlive its request deadline; its events are kept past that for as
        # long as a reply that ended normally would be, then given up on.
        self.running_ttl = chat.settings.routing.request_deadline + self.grace + self.keep
        self._jobs: dict[str, _Job] = {}
        """Replies that have their place, by id."""
        self._tasks: set[asyncio.Task[None]] = set()
        """Every job's task, those still finding their place included."""
        self._sweeper: asyncio.Task[None] | None = None

    # ---- starting -----------------------------------------------------------------------------

    async def start(self, principal: Principal, request: ChatRequest) -> ReplyInfo:
        """Start the reply as a job and return it once it has its place in the conversation.

        What stops the reply before that (an unknown conversation, a used-up quota) is raised
        here, as it would be by ``ChatService.stream``. The job goes on if the caller leaves
        meanwhile; from then on everything, errors included, is an event of the reply.
        """
        if request.conversation_id is not None and request.reply_id is None:
            request.reply_id = new_id()
        job = _Job(REPLY_PREFIX + secrets.token_urlsafe(24))
        placed: asyncio.Future[ReplyInfo] = asyncio.get_running_loop().create_future()
        job.task = asyncio.create_task(self._run(job, principal, request, placed))
        self._tasks.add(job.task)
        job.task.add_done_callback(self._tasks.discard)
        try:
            return await asyncio.shield(placed)
        except asyncio.CancelledError:
            placed.add_done_callback(_consume)
            raise

    async def _run(
        self,
        job: _Job,
        principal: Principal,
        request: ChatRequest,
        placed: asyncio.Future[ReplyInfo],
    ) -> None:
        async def begin(turn: Turn | None, model: str) -> None:
            job.turn = turn
            job.info = ReplyInfo(
                reply_id=job.reply_id,
                user_id=principal.user_id,
                conversation_id=turn.conversation_id if turn else None,
                parent_id=turn.user_message_id if turn else None,
                message_id=turn.reply_id if turn else None,
                model=model,
                created_at=time.time(),
            )
            if self.written is not None and turn is not None:
                # The question is stored before the reply exists anywhere: if this instance
                # dies, whoever takes the reply over has a place to keep its text.
                await self._write_behind_now(job)
            await self.store.create(job.info, self.running_ttl)
            await self.store.hold(job.reply_id, self.lease)
            job.holding = asyncio.create_task(self._hold(job))
            self._jobs[job.reply_id] = job
            self._arm(job)
            placed.set_result(job.info)

        events = self.chat.stream(principal, request, on_begin=begin)
        try:
            async with aclosing(events):
                async for event in events:
                    if isinstance(event, Delta):
                        if event.text:
                            job.texts.append(event.text)
                            await self.store.append(job.reply_id, "delta", {"text": event.text})
                    elif isinstance(event, Done):
                        await self._end(job, "done", done_data(event), event.finish_reason)
                    elif isinstance(event, ErrorEvent):
                        await self._end(job, "error", error_data(event.error), "error")
        except asyncio.CancelledError:
            if not job.stopping or not placed.done():
                if not placed.done():
                    placed.cancel()
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await self._end(job, "done", self._cancelled(job), CANCELLED)
        except ChatgateError as exc:
            if not placed.done():
                placed.set_exception(exc)
                return
            await self._end(job, "error", error_data(exc), "error")
        except Exception as exc:
            if not placed.done():
                placed.set_exception(exc)
                return
            log.exception("unexpected error while running a reply")
            internal = ChatgateError("The server had an error while processing your request.")
            await self._end(job, "error", error_data(internal), "error")
        finally:
            self._jobs.pop(job.reply_id, None)
            if job.timer is not None:
                job.timer.cancel()
            if job.holding is not None:
                job.holding.cancel()

    async def _end(
        self, job: _Job, kind: EventKind, data: dict[str, Any], finish_reason: str
    ) -> None:
        if job.info is None or job.ending:
            return
        job.ending = True
        await self._write_behind_now(job)
        await self.store.end(job.reply_id, kind, data, finish_reason, self.keep)

    async def _write_behind_now(self, job: _Job) -> None:
        """Where other instances may take a reply over (``written`` is set), write what is
        queued now; if the database cannot, it stays queued and is written behind, as without."""
        if self.written is None:
            return
        try:
            await self.written()
        except Exception as exc:
            log.warning("reply %s goes on before its messages are written (%s)", job.reply_id, exc)

    def _cancelled(self, job: _Job) -> dict[str, Any]:
        """The ``done`` event of a stopped reply: its partial text was stored as the core
        stores any cancelled reply, with the usage it estimates when the upstream gave none."""
        text = "".join(job.texts)
        turn, info = job.turn, job.info
        assert info is not None
        prompt = estimate_messages(turn.messages) if turn is not None and text else 0
        usage = Usage(prompt, estimate_tokens(text), estimated=True)
        return done_data(
            Done(
                conversation_id=info.conversation_id,
                message_id=info.message_id if text else None,
                parent_id=info.parent_id,
                finish_reason=CANCELLED,
                usage=usage,
                model=info.model,
                created=int(time.time()),
            )
        )

    async def _hold(self, job: _Job) -> None:
        """Renew the producer's hold while the reply runs (a lapsed hold means this process is
        gone, and another instance then ends the reply: ``_take_over``), and stop the reply
        when its owner asked another instance to."""
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.store.hold(job.reply_id, self.lease)
                if await self.store.stop_asked(job.reply_id):
                    job.stop()
            except Exception as exc:  # the next renewal may get through
                log.warning("could not renew the hold on reply %s (%s)", job.reply_id, exc)

    async def _renew(self, reply_id: str) -> None:
        """Keep a claim while its reply is being ended here, however long storing its text
        takes: no other instance ends it meanwhile (if this one dies, its claim lapses)."""
        while True:
            await asyncio.sleep(self.lease / 3)
            with contextlib.suppress(Exception):  # the next renewal may get through
                await self.store.hold(reply_id, self.lease)

    async def _take_over(self, reply_id: str) -> None:
        """The reply's producer is gone: keep the text it made as the stored reply, then end the
        reply with a ``producer_lost`` error event (called by the one instance whose claim won,
        while it holds it)."""
        renewing = asyncio.create_task(self._renew(reply_id))
        try:
            page = await self.store.read(reply_id, 0, 0)
            if page is None or page.info.ended:
                return
            text = "".join(e.data.get("text", "") for e in page.events if e.kind == "delta")
            log.warning("reply %s lost its producer: kept as it stood", reply_id)
            if self.keep_partial is not None:
                try:
                    await self.keep_partial(page.info, text)
                except Exception:
                    log.exception("could not store the partial text of reply %s", reply_id)
            lost = ProducerLost("The server making this reply stopped; what it said is kept.")
            with contextlib.suppress(KeyError, ValueError):  # gone meanwhile, or ended after all
                await self.store.end(reply_id, "error", error_data(lost), "error", self.keep)
        finally:
            renewing.cancel()

    # ---- the sweep -----------------------------------------------------------------------------

    def start_sweeping(self) -> None:
        """Look once a lease period for replies whose producer is gone and that nobody follows,
        and end them (a serving instance whose store is shared by others does this)."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease)
            try:
                while await self.sweep() >= SWEEP_BATCH:
                    pass
            except Exception as exc:  # Redis away: the next period looks again
                log.warning("could not look for replies whose producer is gone (%s)", exc)

    async def sweep(self) -> int:
        """End the replies whose producer's lease has lapsed, but those another instance claims
        first; how many this instance ended. A reply made here is left alone: its producer
        lives, and renews its lease when it next can."""
        ended = 0
        for reply_id in await self.store.lapsed(SWEEP_BATCH):
            if reply_id in self._jobs:
                continue
            try:
                if await self.store.claim(reply_id, self.lease):
                    await self._take_over(reply_id)
                    ended += 1
            except Exception as exc:  # its claim lapses: this or another instance tries again
                log.warning("could not end reply %s, whose producer is gone (%s)", reply_id, exc)
        return ended

    # ---- watching ------------------------------------------------------------------------------

    def _arm(self, job: _Job) -> None:
        """Nobody watches the reply: it is cancelled unless someone attaches within the grace."""
        if job.timer is None and job.watchers == 0:
            job.timer = asyncio.get_running_loop().call_later(self.grace, self._expire, job)

    def _expire(self, job: _Job) -> None:
        job.timer = None
        if job.watchers == 0:
            task = asyncio.create_task(self._expire_unless_watched(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _expire_unless_watched(self, job: _Job) -> None:
        """A follower on another instance watches through the store; nobody anywhere: cancel."""
        try:
            watched = await self.store.watched(job.reply_id)
        except Exception:
            watched = False
        if job.watchers > 0:
            return
        if watched:
            self._arm(job)
            return
        log.info("reply %s had nobody watching for %ss: cancelled", job.reply_id, self.grace)
        job.stop()

    def _attach(self, reply_id: str) -> _Job | None:
        job = self._jobs.get(reply_id)
        if job is not None:
            job.watchers += 1
            if job.timer is not None:
                job.timer.cancel()
                job.timer = None
        return job

    def _detach(self, job: _Job | None) -> None:
        if job is not None:
            job.watchers -= 1
            if not job.task or not job.task.done():
                self._arm(job)

    # ---- the owner's operations ---------------------------------------------------------------

    async def get(self, principal: Principal, reply_id: str) -> ReplyInfo:
        """The reply if it is ``principal``'s and still kept; others learn nothing of it."""
        info = await self.store.get(reply_id) if reply_id.startswith(REPLY_PREFIX) else None
        if info is None or info.user_id != principal.user_id:
            raise NotFound(f"No reply with id {reply_id!r}.", param="reply_id")
        return info

    async def follow(
        self, info: ReplyInfo, after: int = 0
    ) -> AsyncGenerator[ReplyEvent | None, None]:
        """The reply's events numbered above ``after``, then the rest as they come, until its
        last event. ``None`` is yielded while nothing came for ``KEEP_ALIVE`` seconds.

        Whoever follows counts as watching the reply (get ``info`` with ``get`` first)."""
        job = self._attach(info.reply_id)
        # A reply made elsewhere: say that it is watched, and look for its producer's hold often
        # enough to end it soon after that process is gone.
        remote = job is None and not info.ended
        wait = min(KEEP_ALIVE, self.lease / 2) if remote else KEEP_ALIVE
        watched_at = -math.inf
        try:
            while True:
                if remote and time.monotonic() - watched_at > self.grace / 3:
                    await self.store.watch(info.reply_id, self.grace)
                    watched_at = time.monotonic()
                page = await self.store.read(info.reply_id, after, wait)
                if page is None:
                    return
                for event in page.events:
                    yield event
                    after = event.seq
                if page.info.ended and after >= page.info.last_seq:
                    return
                if not page.events:
                    if remote and await self.store.claim(info.reply_id, self.lease):
                        await self._take_over(info.reply_id)
                        continue
                    yield None
        finally:
            self._detach(job)

    async def cancel(self, principal: Principal, reply_id: str) -> ReplyInfo:
        """Stop the reply (its partial text is kept) and return it as it ended; a reply that
        has already ended is returned as it is."""
        info = await self.get(principal, reply_id)
        job = self._jobs.get(reply_id)
        if job is not None and job.task is not None:
            job.stop()
            await asyncio.wait({job.task})
        elif not info.ended:  # made by another instance: it stops it when it next looks
            await self.store.stop(reply_id, self.lease * 3)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.lease * 2):
                    async with aclosing(self.follow(info, info.last_seq)) as events:
                        async for _ in events:
                            pass
        return await self.store.get(reply_id) or replace(info, ended=True)

    async def of_user(
        self, principal: Principal, conversation_id: str | None = None
    ) -> list[ReplyInfo]:
        """The caller's replies that run, or ended a short while ago, newest first."""
        return await self.store.of_user(principal.user_id, conversation_id)

    async def close(self) -> None:
        """Stop the sweep and every running reply, keeping what each has said, then the store."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        placed = {job.task for job in self._jobs.values()}
        for job in list(self._jobs.values()):
            job.stop()
        tasks = set(self._tasks)
        for task in tasks - placed:
            task.cancel()  # a reply not placed yet has said nothing to keep
        if tasks:
            await asyncio.wait(tasks)
        await self.store.close()


def _consume(future: asyncio.Future[ReplyInfo]) -> None:
    """Nobody waits for the reply's start any more: its failure is for the log only."""
    if not future.cancelled() and future.exception() is not None:
        log.info("a reply whose client had left failed before it began: %s", future.exception())
