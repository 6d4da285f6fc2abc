"""Where the events of a streamed reply are kept while it runs and a short while after.

A reply's events are numbered 1, 2, 3… in the order they were made, so that a client that comes
back can ask for those after the last one it saw and get the rest with nothing missing or
doubled. The store is an interface so that several instances can share it: its operations are
the ones Redis Streams offer (add an entry with a given id, read the entries after an id with a
blocking wait, expire the key), and ``MemoryReplyStore`` is the one-process implementation.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

EventKind = Literal["delta", "done", "error"]


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    """One numbered event of a reply; ``data`` is plain JSON, as any store can keep it."""

    seq: int
    kind: EventKind
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReplyInfo:
    """What a reply is and where it stands.

    ``parent_id`` is the question's message id and ``message_id`` the id the stored reply gets,
    so a client can place the reply in its conversation before it ends. ``last_seq`` is the
    number of events made so far; ``finish_reason`` is set once the reply has ended.
    """

    reply_id: str
    user_id: int
    conversation_id: str | None
    parent_id: str | None
    message_id: str | None
    model: str
    created_at: float
    ended: bool = False
    finish_reason: str | None = None
    last_seq: int = 0


@dataclass(frozen=True, slots=True)
class ReplyPage:
    """Events read after a given number, and the reply as it stood when they were read."""

    info: ReplyInfo
    events: list[ReplyEvent]


class ReplyStore(Protocol):
    """Numbered events per reply, with a lifetime while the reply runs and a shorter one after.

    ``end`` adds the last event and marks the end in one step, so a reader never sees a reply
    that has ended without its last event. A reply past its lifetime is gone: ``get`` and
    ``read`` answer ``None``.
    """

    async def create(self, info: ReplyInfo, ttl: float) -> None: ...

    async def append(self, reply_id: str, kind: EventKind, data: dict[str, Any]) -> int: ...

    async def end(
        self,
        reply_id: str,
        kind: EventKind,
        data: dict[str, Any],
        finish_reason: str,
        ttl: float,
    ) -> int: ...

    async def get(self, reply_id: str) -> ReplyInfo | None: ...

    async def read(self, reply_id: str, after: int, wait: float) -> ReplyPage | None:
        """The events numbered above ``after``; when there are none yet and the reply runs,
        waits up to ``wait`` seconds for one (then answers with none)."""
        ...

    async def of_user(self, user_id: int, conversation_id: str | None = None) -> list[ReplyInfo]:
        """A user's replies that are kept, newest first."""
        ...

    async def hold(self, reply_id: str, ttl: float) -> None:
        """The reply's producer is alive for ``ttl`` more seconds (it renews this while it runs)."""
        ...

    async def claim(self, reply_id: str, ttl: float) -> bool:
        """Take over a running reply whose producer's hold has lapsed, to end it: true for one
        caller only (who then holds it for ``ttl`` seconds, and may renew that with ``hold``)."""
        ...

    async def lapsed(self, limit: int) -> list[str]:
        """Running replies whose holder's hold has lapsed (at most ``limit``), for an instance
        to claim and end when nobody follows them: one cheap look however many replies run."""
        ...

    async def watch(self, reply_id: str, ttl: float) -> None:
        """Someone follows the reply, for ``ttl`` more seconds, from wherever they are."""
        ...

    async def watched(self, reply_id: str) -> bool: ...

    async def stop(self, reply_id: str, ttl: float) -> None:
        """Ask the reply's producer, wherever it runs, to stop it (it looks every few seconds;
        the request stands for ``ttl`` seconds)."""
        ...

    async def stop_asked(self, reply_id: str) -> bool: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Kept:
    info: ReplyInfo
    expires_at: float
    events: list[ReplyEvent] = field(default_factory=list)
    held_until: float = 0.0
    watched_until: float = 0.0
    stop_until: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        """Readers waiting on this reply look again; later readers wait on a fresh event."""
        self.changed.set()
        self.changed = asyncio.Event()


class MemoryReplyStore:
    """The reply store of one process: a dict, with lifetimes checked on every use.

    ``now`` is a monotonic clock in seconds (a test may hand in its own).
    """

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._kept: dict[str, _Kept] = {}

    def _alive(self, reply_id: str) -> _Kept | None:
        kept = self._kept.get(reply_id)
        if kept is not None and kept.expires_at <= self._now():
            del self._kept[reply_id]
            kept.wake()
            return None
        return kept

    def _purge(self) -> None:
        now = self._now()
        for reply_id in [r for r, k in self._kept.items() if k.expires_at <= now]:
            self._kept.pop(reply_id).wake()

    async def create(self, info: ReplyInfo, ttl: float) -> None:
        self._purge()
        self._kept[info.reply_id] = _Kept(info, self._now() + ttl)

    def _add(self, reply_id: str, kind: EventKind, data: dict[str, Any]) -> _Kept:
        kept = self._alive(reply_id)
        if kept is None:
            raise KeyError(reply_id)
        if kept.info.ended:
            raise ValueError(f"reply {reply_id} has ended")
        seq = kept.info.last_seq + 1
        kept.events.append(ReplyEvent(seq, kind, data))
        kept.info = replace(kept.info, last_seq=seq)
        return kept

    async def append(self, reply_id: str, kind: EventKind, data: dict[str, Any]) -> int:
        kept = self._add(reply_id, kind, data)
        kept.wake()
        return kept.info.last_seq

    async def end(
        self,
        reply_id: str,
        kind: EventKind,
        data: dict[str, Any],
        finish_reason: str,
        ttl: float,
    ) -> int:
        kept = self._add(reply_id, kind, data)
        kept.info = replace(kept.info, ended=True, finish_reason=finish_reason)
        kept.expires_at = self._now() + ttl
        kept.wake()
        return kept.info.last_seq

    async def get(self, reply_id: str) -> ReplyInfo | None:
        kept = self._alive(reply_id)
        return kept.info if kept is not None else None

    async def read(self, reply_id: str, after: int, wait: float) -> ReplyPage | None:
        kept = self._alive(reply_id)
        if kept is None:
            return None
        if kept.info.last_seq <= after and not kept.info.ended and wait > 0:
            changed = kept.changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wait)
            kept = self._alive(reply_id)
            if kept is None:
                return None
        return ReplyPage(kept.info, kept.events[max(after, 0) :])

    async def of_user(self, user_id: int, conversation_id: str | None = None) -> list[ReplyInfo]:
        self._purge()
        found = [
            k.info
            for k in self._kept.values()
            if k.info.user_id == user_id
            and (conversation_id is None or k.info.conversation_id == conversation_id)
        ]
        return sorted(found, key=lambda info: info.created_at, reverse=True)

    async def hold(self, reply_id: str, ttl: float) -> None:
        kept = self._alive(reply_id)
        if kept is not None:
            kept.held_until = self._now() + ttl

    async def claim(self, reply_id: str, ttl: float) -> bool:
        kept = self._alive(reply_id)
        if kept is None or kept.info.ended or kept.held_until > self._now():
            return False
        kept.held_until = self._now() + ttl
        return True

    async def lapsed(self, limit: int) -> list[str]:
        self._purge()
        now = self._now()
        found = [
            reply_id
            for reply_id, kept in self._kept.items()
            if not kept.info.ended and 0 < kept.held_until <= now
        ]
        return found[:limit]

    async def watch(self, reply_id: str, ttl: float) -> None:
        kept = self._alive(reply_id)
        if kept is not None:
            kept.watched_until = self._now() + ttl

    async def watched(self, reply_id: str) -> bool:
        kept = self._alive(reply_id)
        return kept is not None and kept.watched_until > self._now()

    async def stop(self, reply_id: str, ttl: float) -> None:
        kept = self._alive(reply_id)
        if kept is not None:
            kept.stop_until = self._now() + ttl

    async def stop_asked(self, reply_id: str) -> bool:
        kept = self._alive(reply_id)
        return kept is not None and kept.stop_until > self._now()

    async def close(self) -> None:
        for kept in self._kept.values():
            kept.wake()
        self._kept.clear()
