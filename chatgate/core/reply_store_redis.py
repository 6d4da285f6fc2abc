"""The reply store in Redis, shared by every instance: a reply started on one is followed on any.

A reply is three keys under the prefix: ``reply:{id}`` (a hash: what the reply is, its last
event number, whether and how it ended), ``reply:{id}:events`` (a Redis Stream whose entry ids
are ``N-0`` for event N, so that "the events after N" is Redis's own ``XREAD … N-0``, and a
reader waits for the next one with ``XREAD BLOCK``) and ``reply:{id}:held`` (the producing
process's lease, which it renews while it runs). ``replies:user:{user_id}`` is a sorted set of a
user's reply ids by start time, for listing. ``replies:running`` is a sorted set of the running
replies by the time their lease lapses (on Redis's clock), kept with the lease by the same
scripts: an instance finds the replies whose producer is gone by one range read of it.

Every command goes through one pipelined connection (``RedisLane``: a call costs a fifth of
redis-py's), except a follower's blocking wait, which holds a connection of its own from
redis-py's pool while it waits. A follower in the process that makes the reply waits for its
next event in that process instead, and Redis is only read.

Adding an event and ending are Lua scripts, so an event is numbered, added and counted in one
step, and a reply never ends without its last event nor takes one after its end (a producer that
lost its lease to another instance learns so on its next event). Holding, claiming and finding
the lapsed leases are scripts too, on Redis's clock, so that instances whose clocks differ agree
on when a lease has lapsed, and a claim is won by one of them only. While the reply runs its keys
live for the running lifetime; its end shortens them to the keep time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from chatgate.core.redis_lane import Command, RedisLane
from chatgate.core.reply_store import EventKind, ReplyEvent, ReplyInfo, ReplyPage


@dataclass(slots=True)
class _Script:
    """A Lua script and its SHA-1, the name Redis knows it by once loaded."""

    source: str
    sha: str = ""

    def __post_init__(self) -> None:
        self.sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()


# KEYS: hash, stream. ARGV: kind, data. Returns the new number; -1: no such reply; -2: ended.
_APPEND = _Script("""
local ended = redis.call('HGET', KEYS[1], 'ended')
if not ended then return -1 end
if ended == '1' then return -2 end
local seq = redis.call('HINCRBY', KEYS[1], 'last_seq', 1)
redis.call('XADD', KEYS[2], seq .. '-0', 'k', ARGV[1], 'd', ARGV[2])
if seq == 1 then redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1])) end
return seq
""")

# KEYS: hash, stream, lease, running. ARGV: kind, data, finish reason, keep ms, reply id. As
# _APPEND; it also marks the end, drops the lease and the reply from the running ones, and
# shortens every key's life to the keep time, all at once.
_END = _Script("""
local ended = redis.call('HGET', KEYS[1], 'ended')
if not ended then return -1 end
if ended == '1' then return -2 end
local seq = redis.call('HINCRBY', KEYS[1], 'last_seq', 1)
redis.call('XADD', KEYS[2], seq .. '-0', 'k', ARGV[1], 'd', ARGV[2])
redis.call('HSET', KEYS[1], 'ended', '1', 'finish_reason', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[5])
return seq
""")

# Redis's clock in milliseconds, the one every instance's lease is measured on.
_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# KEYS: hash, lease, running. ARGV: ms, reply id. The holder has ``ms`` more: the lease, and the
# reply's place among the running ones. 0 (and nothing held) when the reply no longer runs.
_HOLD = _Script(
    _NOW
    + """
if redis.call('HGET', KEYS[1], 'ended') ~= '0' then
  redis.call('ZREM', KEYS[3], ARGV[2])
  return 0
end
redis.call('SET', KEYS[2], 'held', 'PX', ARGV[1])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[1]), ARGV[2])
return 1
"""
)

# KEYS: hash, lease, running. ARGV: ms, reply id. 1 when the reply runs, nobody holds it, and the
# caller now does: ``SET NX`` lets one caller in, however many ask at once. A reply that no
# longer runs leaves the running ones; a claimed one comes due again when its claim lapses.
_CLAIM = _Script(
    _NOW
    + """
if redis.call('HGET', KEYS[1], 'ended') ~= '0' then
  redis.call('ZREM', KEYS[3], ARGV[2])
  return 0
end
if redis.call('SET', KEYS[2], 'claimed', 'NX', 'PX', ARGV[1]) then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[1]), ARGV[2])
  return 1
end
return 0
"""
)

# KEYS: running. ARGV: limit. The running replies whose lease has lapsed by Redis's clock.
_LAPSED = _Script(
    _NOW
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
"""
)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


@dataclass(slots=True)
class _Made:
    """A reply this process makes, as it stands in Redis: its followers here read it from
    here and wait on ``changed``, and Redis only has to take its events."""

    info: ReplyInfo
    expires_at: float
    """When its keys expire in Redis (on this process's monotonic clock)."""
    events: list[ReplyEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, seq: int, kind: EventKind, data: dict[str, Any]) -> None:
        self.events.append(ReplyEvent(seq, kind, data))
        self.info = replace(self.info, last_seq=seq)

    def wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class RedisReplyStore:
    """``ReplyStore`` on one Redis (the keys of a reply are used together: not a cluster)."""

    def __init__(self, url: str, *, prefix: str = "chatgate:") -> None:
        self._lane = RedisLane(url)
        self._redis: Any = aioredis.from_url(url)
        self._prefix = prefix
        self._made: dict[str, _Made] = {}

    def _keys(self, reply_id: str) -> tuple[str, str, str]:
        base = f"{self._prefix}reply:{reply_id}"
        return base, base + ":events", base + ":held"

    def _user_key(self, user_id: int) -> str:
        return f"{self._prefix}replies:user:{user_id}"

    @property
    def _running_key(self) -> str:
        return f"{self._prefix}replies:running"

    async def _run(self, script: _Script, keys: list[str], args: list[Any]) -> Any:
        command: Command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            [reply] = await self._lane.pipeline([command])
        except NoScriptError:
            await self._lane.pipeline([("SCRIPT", "LOAD", script.source)])
            [reply] = await self._lane.pipeline([command])
        return reply

    async def _atomic(self, commands: list[Command]) -> list[Any]:
        """The commands' replies, run as one transaction."""
        replies = await self._lane.pipeline([("MULTI",), *commands, ("EXEC",)])
        done: list[Any] = replies[-1]
        return done

    async def create(self, info: ReplyInfo, ttl: float) -> None:
        meta, _, _ = self._keys(info.reply_id)
        described = {
            "reply_id": info.reply_id,
            "user_id": info.user_id,
            "conversation_id": info.conversation_id,
            "parent_id": info.parent_id,
            "message_id": info.message_id,
            "model": info.model,
            "created_at": info.created_at,
        }
        users = self._user_key(info.user_id)
        await self._atomic(
            [
                ("HSET", meta, "info", orjson.dumps(described), "last_seq", 0, "ended", 0),
                ("PEXPIRE", meta, _ms(ttl)),
                ("ZADD", users, info.created_at, info.reply_id),
                ("PEXPIRE", users, _ms(ttl)),
            ]
        )
        self._made[info.reply_id] = _Made(info, time.monotonic() + ttl)

    async def append(self, reply_id: str, kind: EventKind, data: dict[str, Any]) -> int:
        meta, events, _ = self._keys(reply_id)
        try:
            reply = await self._run(_APPEND, [meta, events], [kind, _json(data)])
            seq = _checked(reply_id, reply)
        except (KeyError, ValueError):  # ended elsewhere (or gone): read it from Redis now
            self._forget(reply_id)
            raise
        made = self._made.get(reply_id)
        if made is not None:
            made.add(seq, kind, data)
            made.wake()
        return seq

    async def end(
        self,
        reply_id: str,
        kind: EventKind,
        data: dict[str, Any],
        finish_reason: str,
        ttl: float,
    ) -> int:
        keys = [*self._keys(reply_id), self._running_key]
        args = [kind, _json(data), finish_reason, _ms(ttl), reply_id]
        try:
            seq = await self._run(_END, keys, args)
        finally:
            self._forget(reply_id)  # its followers here read the end from Redis
        return _checked(reply_id, seq)

    def _forget(self, reply_id: str) -> None:
        made = self._made.pop(reply_id, None)
        if made is not None:
            made.wake()

    async def get(self, reply_id: str) -> ReplyInfo | None:
        meta, _, _ = self._keys(reply_id)
        [fields] = await self._lane.pipeline([("HGETALL", meta)])
        return _info(fields)

    async def read(self, reply_id: str, after: int, wait: float) -> ReplyPage | None:
        made = self._made.get(reply_id)
        if made is not None and made.expires_at <= time.monotonic():
            self._forget(reply_id)
            made = None
        if made is not None:
            if made.info.last_seq <= after and wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(made.changed.wait(), wait)
            if self._made.get(reply_id) is made:
                return ReplyPage(made.info, made.events[max(after, 0) :])
            return await self._page(reply_id, after)  # it has ended: the end is in Redis
        page = await self._page(reply_id, after)
        if page is None or page.events or page.info.ended or wait <= 0:
            return page
        # Returns as soon as an event numbered above ``after`` exists, one added since the page
        # above was read included.
        _, events, _ = self._keys(reply_id)
        await self._redis.xread({events: f"{after}-0"}, count=1, block=_ms(wait))
        return await self._page(reply_id, after)

    async def _page(self, reply_id: str, after: int) -> ReplyPage | None:
        meta, events, _ = self._keys(reply_id)
        start = f"({after}-0" if after > 0 else "-"
        fields, entries = await self._atomic([("HGETALL", meta), ("XRANGE", events, start, "+")])
        info = _info(fields)
        if info is None:
            return None
        return ReplyPage(info, [_event(entry_id, values) for entry_id, values in entries])

    async def of_user(self, user_id: int, conversation_id: str | None = None) -> list[ReplyInfo]:
        users = self._user_key(user_id)
        [reply_ids] = await self._lane.pipeline([("ZREVRANGE", users, 0, -1)])
        if not reply_ids:
            return []
        described = await self._lane.pipeline([("HGETALL", self._keys(r)[0]) for r in reply_ids])
        found, gone = [], []
        for reply_id, fields in zip(reply_ids, described, strict=True):
            info = _info(fields)
            if info is None:
                gone.append(reply_id)
            elif conversation_id is None or info.conversation_id == conversation_id:
                found.append(info)
        if gone:
            await self._lane.pipeline([("ZREM", users, *gone)])
        return found

    async def hold(self, reply_id: str, ttl: float) -> None:
        meta, _, lease = self._keys(reply_id)
        await self._run(_HOLD, [meta, lease, self._running_key], [_ms(ttl), reply_id])

    async def claim(self, reply_id: str, ttl: float) -> bool:
        meta, _, lease = self._keys(reply_id)
        keys = [meta, lease, self._running_key]
        return bool(await self._run(_CLAIM, keys, [_ms(ttl), reply_id]))

    async def lapsed(self, limit: int) -> list[str]:
        found: list[str] = await self._run(_LAPSED, [self._running_key], [limit])
        return found

    async def watch(self, reply_id: str, ttl: float) -> None:
        await self._lane.pipeline([("SET", self._watch_key(reply_id), "1", "PX", _ms(ttl))])

    async def watched(self, reply_id: str) -> bool:
        [found] = await self._lane.pipeline([("EXISTS", self._watch_key(reply_id))])
        return bool(found)

    async def stop(self, reply_id: str, ttl: float) -> None:
        await self._lane.pipeline([("SET", self._stop_key(reply_id), "1", "PX", _ms(ttl))])

    async def stop_asked(self, reply_id: str) -> bool:
        [found] = await self._lane.pipeline([("EXISTS", self._stop_key(reply_id))])
        return bool(found)

    def _stop_key(self, reply_id: str) -> str:
        return f"{self._prefix}reply:{reply_id}:stop"

    def _watch_key(self, reply_id: str) -> str:
        return f"{self._prefix}reply:{reply_id}:watched"

    async def close(self) -> None:
        for made in self._made.values():
            made.wake()
        self._made.clear()
        self._lane.close()
        with contextlib.suppress(Exception):
            await self._redis.aclose()


def _json(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data)


def _checked(reply_id: str, seq: int) -> int:
    if seq == -1:
        raise KeyError(reply_id)
    if seq == -2:
        raise ValueError(f"reply {reply_id} has ended")
    return int(seq)


def _info(flat: list[str]) -> ReplyInfo | None:
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    if "info" not in fields:
        return None
    return ReplyInfo(
        **orjson.loads(fields["info"]),
        ended=fields.get("ended") == "1",
        finish_reason=fields.get("finish_reason"),
        last_seq=int(fields.get("last_seq", "0")),
    )


def _event(entry_id: str, values: list[str]) -> ReplyEvent:
    fields = dict(zip(values[::2], values[1::2], strict=True))
    kind: Any = fields["k"]
    return ReplyEvent(int(entry_id.split("-", 1)[0]), kind, orjson.loads(fields["d"]))
