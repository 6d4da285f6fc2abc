"""The reply store in Redis, shared by every instance: a reply started on one is followed on any.

A reply is three keys under the prefix: ``reply:{id}`` (a hash: what the reply is, its last
event number, whether and how it ended), ``reply:{id}:events`` (a Redis Stream whose entry ids
are ``N-0`` for event N, so that "the events after N" is Redis's own ``XREAD … N-0``, and a
reader waits for the next one with ``XREAD BLOCK``) and ``reply:{id}:held`` (the producing
process's lease, which it renews while it runs). ``replies:user:{user_id}`` is a sorted set of a
user's reply ids by start time, for listing.

Adding an event and ending are Lua scripts, so an event is numbered, added and counted in one
step, and a reply never ends without its last event nor takes one after its end (a producer that
lost its lease to another instance learns so on its next event). While the reply runs its keys
live for the running lifetime; its end shortens them to the keep time.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import redis.asyncio as aioredis

from chatgate.core.reply_store import EventKind, ReplyEvent, ReplyInfo, ReplyPage

# KEYS: hash, stream. ARGV: kind, data. Returns the new number; -1: no such reply; -2: ended.
_APPEND = """
local ended = redis.call('HGET', KEYS[1], 'ended')
if not ended then return -1 end
if ended == '1' then return -2 end
local seq = redis.call('HINCRBY', KEYS[1], 'last_seq', 1)
redis.call('XADD', KEYS[2], seq .. '-0', 'k', ARGV[1], 'd', ARGV[2])
if seq == 1 then redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1])) end
return seq
"""

# KEYS: hash, stream, lease. ARGV: kind, data, finish reason, keep ms. As _APPEND; it also marks
# the end, drops the lease and shortens every key's life to the keep time, all at once.
_END = """
local ended = redis.call('HGET', KEYS[1], 'ended')
if not ended then return -1 end
if ended == '1' then return -2 end
local seq = redis.call('HINCRBY', KEYS[1], 'last_seq', 1)
redis.call('XADD', KEYS[2], seq .. '-0', 'k', ARGV[1], 'd', ARGV[2])
redis.call('HSET', KEYS[1], 'ended', '1', 'finish_reason', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('DEL', KEYS[3])
return seq
"""

# KEYS: hash, lease. ARGV: ms. 1 when the reply runs, nobody holds it, and the caller now does.
_CLAIM = """
if redis.call('HGET', KEYS[1], 'ended') ~= '0' then return 0 end
if redis.call('SET', KEYS[2], 'claimed', 'NX', 'PX', ARGV[1]) then return 1 end
return 0
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisReplyStore:
    """``ReplyStore`` on one Redis (the keys of a reply are used together: not a cluster)."""

    def __init__(self, url: str, *, prefix: str = "chatgate:") -> None:
        self._redis: Any = aioredis.from_url(url)
        self._prefix = prefix
        self._append = self._redis.register_script(_APPEND)
        self._end = self._redis.register_script(_END)
        self._claim = self._redis.register_script(_CLAIM)

    def _keys(self, reply_id: str) -> tuple[str, str, str]:
        base = f"{self._prefix}reply:{reply_id}"
        return base, base + ":events", base + ":held"

    def _user_key(self, user_id: int) -> str:
        return f"{self._prefix}replies:user:{user_id}"

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
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(meta, mapping={"info": orjson.dumps(described), "last_seq": 0, "ended": 0})
            pipe.pexpire(meta, _ms(ttl))
            pipe.zadd(users, {info.reply_id: info.created_at})
            pipe.pexpire(users, _ms(ttl))
            await pipe.execute()

    async def append(self, reply_id: str, kind: EventKind, data: dict[str, Any]) -> int:
        meta, events, _ = self._keys(reply_id)
        return _checked(reply_id, await self._append(keys=[meta, events], args=[kind, _json(data)]))

    async def end(
        self,
        reply_id: str,
        kind: EventKind,
        data: dict[str, Any],
        finish_reason: str,
        ttl: float,
    ) -> int:
        keys = list(self._keys(reply_id))
        seq = await self._end(keys=keys, args=[kind, _json(data), finish_reason, _ms(ttl)])
        return _checked(reply_id, seq)

    async def get(self, reply_id: str) -> ReplyInfo | None:
        meta, _, _ = self._keys(reply_id)
        return _info(await self._redis.hgetall(meta))

    async def read(self, reply_id: str, after: int, wait: float) -> ReplyPage | None:
        page = await self._page(reply_id, after)
        if page is None or page.events or page.info.ended or wait <= 0:
            return page
        _, events, _ = self._keys(reply_id)
        # Returns as soon as an event numbered above ``after`` exists, one added since the
        # page above was read included; the page is then read again with the reply's state.
        await self._redis.xread({events: f"{after}-0"}, count=1, block=_ms(wait))
        return await self._page(reply_id, after)

    async def _page(self, reply_id: str, after: int) -> ReplyPage | None:
        meta, events, _ = self._keys(reply_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(meta)
            pipe.xrange(events, f"({max(after, 0)}-0" if after > 0 else "-", "+")
            fields, entries = await pipe.execute()
        info = _info(fields)
        if info is None:
            return None
        return ReplyPage(info, [_event(entry_id, values) for entry_id, values in entries])

    async def of_user(self, user_id: int, conversation_id: str | None = None) -> list[ReplyInfo]:
        users = self._user_key(user_id)
        reply_ids = await self._redis.zrevrange(users, 0, -1)
        if not reply_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for reply_id in reply_ids:
                pipe.hgetall(self._keys(reply_id.decode())[0])
            described = await pipe.execute()
        found, gone = [], []
        for reply_id, fields in zip(reply_ids, described, strict=True):
            info = _info(fields)
            if info is None:
                gone.append(reply_id)
            elif conversation_id is None or info.conversation_id == conversation_id:
                found.append(info)
        if gone:
            await self._redis.zrem(users, *gone)
        return found

    async def hold(self, reply_id: str, ttl: float) -> None:
        await self._redis.set(self._keys(reply_id)[2], "held", px=_ms(ttl))

    async def claim(self, reply_id: str, ttl: float) -> bool:
        meta, _, lease = self._keys(reply_id)
        return bool(await self._claim(keys=[meta, lease], args=[_ms(ttl)]))

    async def watch(self, reply_id: str, ttl: float) -> None:
        await self._redis.set(self._keys(reply_id)[0] + ":watched", "1", px=_ms(ttl))

    async def watched(self, reply_id: str) -> bool:
        return bool(await self._redis.exists(self._keys(reply_id)[0] + ":watched"))

    async def close(self) -> None:
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


def _info(fields: dict[bytes, bytes]) -> ReplyInfo | None:
    if not fields or b"info" not in fields:
        return None
    described = orjson.loads(fields[b"info"])
    finish_reason = fields.get(b"finish_reason")
    return ReplyInfo(
        **described,
        ended=fields.get(b"ended") == b"1",
        finish_reason=finish_reason.decode() if finish_reason is not None else None,
        last_seq=int(fields.get(b"last_seq", b"0")),
    )


def _event(entry_id: bytes, values: dict[bytes, bytes]) -> ReplyEvent:
    kind: Any = values[b"k"].decode()
    return ReplyEvent(int(entry_id.split(b"-", 1)[0]), kind, orjson.loads(values[b"d"]))
