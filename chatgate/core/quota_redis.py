"""Quota counters in Redis, for several instances that must share exact limits.

The check-and-take of a request is one Lua script, which Redis runs atomically, so limits hold
exactly across instances. Keys: ``{prefix}q:{scope}:{day}:r`` and ``…:t`` (counted requests
and tokens of a day, kept two days), ``{prefix}q:{scope}:m`` (a sorted set of the last minute's
requests) and ``{prefix}q:{scope}:s`` (streams open now). All the keys of a request are used
together, so this needs one Redis, not a cluster.

A stream whose instance dies before settling stays counted in ``…:s`` until the key expires,
an hour after the scope's last request.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from chatgate.core.quota_backends import LIMIT_ORDER, Counts, Scope, Verdict
from chatgate.core.redis_lane import RedisLane

log = logging.getLogger("chatgate.quotas")

DAY_TTL = 2 * 86400
STREAMS_TTL = 3600

# KEYS: per scope r, t, m, s. ARGV: now, member, day ttl, streams ttl, then 4 limits per scope
# (-1: none). Returns ok, failing scope, failing limit (1-4), then r, t, m, s, oldest per scope.
_TAKE = """
local now = tonumber(ARGV[1])
local n = #KEYS / 4
local out = {1, 0, 0}
local seen = {}
for i = 0, n - 1 do
  local m_key = KEYS[i * 4 + 3]
  redis.call('ZREMRANGEBYSCORE', m_key, '-inf', now - 60)
  local oldest = redis.call('ZRANGE', m_key, 0, 0, 'WITHSCORES')[2] or ''
  local used = {
    tonumber(redis.call('GET', KEYS[i * 4 + 1]) or '0'),
    tonumber(redis.call('GET', KEYS[i * 4 + 2]) or '0'),
    redis.call('ZCARD', m_key),
    tonumber(redis.call('GET', KEYS[i * 4 + 4]) or '0'),
  }
  seen[i + 1] = {used, oldest}
  if out[1] == 1 then
    for j = 1, 4 do
      local limit = tonumber(ARGV[4 + i * 4 + j])
      if limit >= 0 and used[j] >= limit then
        out = {0, i, j}
        break
      end
    end
  end
end
for i = 0, n - 1 do
  local used, oldest = seen[i + 1][1], seen[i + 1][2]
  if out[1] == 1 then
    redis.call('INCR', KEYS[i * 4 + 1])
    redis.call('EXPIRE', KEYS[i * 4 + 1], ARGV[3])
    used[1] = used[1] + 1
    if tonumber(ARGV[4 + i * 4 + 3]) >= 0 then
      redis.call('ZADD', KEYS[i * 4 + 3], now, ARGV[2])
      redis.call('EXPIRE', KEYS[i * 4 + 3], 61)
      used[3] = used[3] + 1
      if oldest == '' then oldest = ARGV[1] end
    end
    redis.call('INCR', KEYS[i * 4 + 4])
    redis.call('EXPIRE', KEYS[i * 4 + 4], ARGV[4])
    used[4] = used[4] + 1
  end
  for j = 1, 4 do out[#out + 1] = used[j] end
  out[#out + 1] = oldest
end
return out
"""

# KEYS: per scope r, t, s. ARGV: counted (0/1), tokens, day ttl.
_RELEASE = """
local tokens = tonumber(ARGV[2])
for i = 0, #KEYS / 3 - 1 do
  if ARGV[1] == '0' and tonumber(redis.call('GET', KEYS[i * 3 + 1]) or '0') > 0 then
    redis.call('DECR', KEYS[i * 3 + 1])
  end
  if tokens > 0 then
    redis.call('INCRBY', KEYS[i * 3 + 2], tokens)
    redis.call('EXPIRE', KEYS[i * 3 + 2], ARGV[3])
  end
  if redis.call('DECR', KEYS[i * 3 + 3]) <= 0 then
    redis.call('DEL', KEYS[i * 3 + 3])
  end
end
return 1
"""


def _limit(value: int | None) -> int:
    return -1 if value is None else value


class RedisQuotaBackend:
    def __init__(self, url: str, *, prefix: str = "chatgate:") -> None:
        self.prefix = prefix
        self.redis: Any = aioredis.from_url(url, decode_responses=True)
        self._lane = RedisLane(url)
        self._take = self.redis.register_script(_TAKE)
        self._release = self.redis.register_script(_RELEASE)
        self._takes: list[tuple[list[str], list[Any], asyncio.Future[list[Any]]]] = []
        self._taker: asyncio.Task[None] | None = None
        self._releases: list[tuple[list[str], list[Any]]] = []
        self._sender: asyncio.Task[None] | None = None

    def _key(self, scope: str, part: str, day: str | None = None) -> str:
        return f"{self.prefix}q:{scope}:{day}:{part}" if day else f"{self.prefix}q:{scope}:{part}"

    async def seed(self, scope: str, day: str, requests: int, tokens: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(scope, "r", day), requests, nx=True, ex=DAY_TTL)
            pipe.set(self._key(scope, "t", day), tokens, nx=True, ex=DAY_TTL)
            await pipe.execute()

    async def peek(self, scopes: Sequence[Scope], day: str, now: float) -> list[Counts]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for scope in scopes:
                pipe.get(self._key(scope.key, "r", day))
                pipe.get(self._key(scope.key, "t", day))
                pipe.zcount(self._key(scope.key, "m"), f"({now - 60!r}", "+inf")
                pipe.get(self._key(scope.key, "s"))
            values = await pipe.execute()
        return [
            Counts(
                requests=int(values[i] or 0),
                tokens=int(values[i + 1] or 0),
                minute=int(values[i + 2] or 0),
                streams=max(0, int(values[i + 3] or 0)),
            )
            for i in range(0, len(values), 4)
        ]

    async def take(self, scopes: Sequence[Scope], day: str, now: float) -> Verdict:
        keys: list[str] = []
        args: list[Any] = [repr(now), f"{now!r}:{secrets.token_hex(8)}", DAY_TTL, STREAMS_TTL]
        for scope in scopes:
            keys += [
                self._key(scope.key, "r", day),
                self._key(scope.key, "t", day),
                self._key(scope.key, "m"),
                self._key(scope.key, "s"),
            ]
            args += [_limit(getattr(scope.limits, name)) for name in LIMIT_ORDER]
        loop = asyncio.get_running_loop()
        asked: asyncio.Future[list[Any]] = loop.create_future()
        self._takes.append((keys, args, asked))
        if self._taker is None:
            self._taker = loop.create_task(self._send_takes())
        out = await asked
        counts = []
        for i in range(len(scopes)):
            r, t, m, s, oldest = out[3 + i * 5 : 8 + i * 5]
            counts.append(Counts(int(r), int(t), int(m), int(s), float(oldest) if oldest else None))
        if int(out[0]) == 1:
            return Verdict(True, counts)
        return Verdict(False, counts, LIMIT_ORDER[int(out[2]) - 1], int(out[1]))

    def release(
        self, scopes: Sequence[str], day: str, *, counted: bool, tokens: int, now: float
    ) -> None:
        """Queued, and sent with the other releases of the moment in one pipeline: a busy
        instance settles many requests per round trip."""
        keys: list[str] = []
        for scope in scopes:
            keys += [self._key(scope, "r", day), self._key(scope, "t", day), self._key(scope, "s")]
        self._releases.append((keys, [1 if counted else 0, tokens, DAY_TTL]))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_releases())

    async def _send_takes(self) -> None:
        """Every take of the moment in one pipeline. One round trip each cost a request more
        CPU than all the rest of its quota work; a busy instance now pays it once per tick."""
        try:
            while self._takes:
                batch, self._takes = self._takes, []
                try:
                    results = await self._pipeline(self._take, [(k, a) for k, a, _ in batch])
                except Exception as exc:
                    for _, _, asked in batch:
                        if not asked.done():
                            asked.set_exception(exc)
                    continue
                for (keys, _, asked), out in zip(batch, results, strict=True):
                    if not asked.done():
                        asked.set_result(out)
                    elif int(out[0]) == 1:
                        self._give_back(keys)
        finally:
            self._taker = None

    def _give_back(self, keys: list[str]) -> None:
        """A take went through after its caller had gone: nothing would settle it, so the
        request and the stream it took are given back (its place in the minute's window
        stays until the window moves on)."""
        back: list[str] = []
        for i in range(0, len(keys), 4):
            back += [keys[i], keys[i + 1], keys[i + 3]]
        self._releases.append((back, [0, 0, DAY_TTL]))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_releases())

    async def _send_releases(self) -> None:
        try:
            while self._releases:
                batch, self._releases = self._releases, []
                try:
                    await self._pipeline(self._release, batch)
                except Exception:
                    log.exception("could not settle %d quota reservations in Redis", len(batch))
        finally:
            self._sender = None

    async def _pipeline(self, script: Any, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        for attempt in (1, 2):
            commands = [("EVALSHA", script.sha, len(keys), *keys, *args) for keys, args in calls]
            try:
                return await self._lane.pipeline(commands)
            except NoScriptError:
                if attempt == 2:
                    raise
            # Redis does not know the script (a restart, a flush): load it, then send again.
            script.sha = await self.redis.script_load(script.script)
        raise AssertionError("unreachable")

    async def drain(self) -> None:
        while self._taker is not None or self._sender is not None:
            busy = [t for t in (self._taker, self._sender) if t is not None]
            await asyncio.gather(*busy, return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        self._lane.close()
        await self.redis.aclose()
