"""Logging in with a password: login tokens, the ChatAPI token protocol, and a limit on
failed attempts per user name and per client address.

An unknown user, a user without a password and a wrong password all get the same answer after
the same work (``Passwords.verify`` hashes against a dummy), so neither the reply nor its timing
tells which names exist or which passwords are right. A disabled account answers so, but only to
its right password: whoever knows that learns nothing a login would not tell them.

Failed logins are counted in process, or in Redis when it is configured: counted per process,
N workers or instances would allow N times the guesses (``RedisLoginLimiter``).
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.core.accounts import AccountService, Principal, UserInfo, user_info
from chatgate.core.errors import (
    AccountDisabled,
    AccountPending,
    InvalidCredentials,
    TooManyLoginAttempts,
)
from chatgate.core.jwts import Claims, JwtCodec
from chatgate.store.db import Database
from chatgate.store.tables import ChatApiToken, RevokedToken, User

log = logging.getLogger("chatgate.logins")

_BAD_LOGIN = "Invalid username or password"
_DISABLED = "This account is disabled; ask an administrator to enable it."
_PENDING = "This account waits for an administrator's approval."
_MAX_TRACKED = 100_000


@dataclass(frozen=True, slots=True)
class Session:
    """A login token just issued (or, for ChatAPI, issued again) and whose it is."""

    token: str
    claims: Claims
    user: UserInfo


class Attempt(Protocol):
    """One login attempt, counted as a failure until it is known to have succeeded."""

    async def succeeded(self) -> None:
        """Take the attempt back from the address and forget the name's failures."""


class LoginLimiter(Protocol):
    """Where failed logins are counted: in process, or in Redis for several processes."""

    async def take(self, username: str, address: str | None) -> Attempt:
        """Count an attempt before its password is checked, or raise ``TooManyLoginAttempts``."""

    async def close(self) -> None: ...


class _Attempt:
    """One login attempt, counted as a failure until it is known to have succeeded."""

    def __init__(self, limiter: FailedLoginLimiter, keys: tuple[str, ...], at: float) -> None:
        self._limiter = limiter
        self._keys = keys
        self._at = at

    def succeeded(self) -> None:
        name_key, *address_key = self._keys
        for key in address_key:
            self._limiter.forget(key, self._at)
        self._limiter.clear(name_key)


class _Awaited:
    """An attempt counted in process, as ``LoginService`` settles any attempt."""

    def __init__(self, attempt: _Attempt) -> None:
        self._attempt = attempt

    async def succeeded(self) -> None:
        self._attempt.succeeded()


class FailedLoginLimiter:
    """At most ``max_failures`` failed logins per user name and per address in ``window``
    seconds. An attempt counts before the password is checked, so parallel guesses cannot
    slip past the limit."""

    def __init__(self, max_failures: int, window: float, clock: Callable[[], float]) -> None:
        self.max_failures = max_failures
        self.window = window
        self._now = clock
        self._failures: dict[str, deque[float]] = {}

    async def take(self, username: str, address: str | None) -> Attempt:
        return _Awaited(self.begin(username, address))

    async def close(self) -> None:
        """Nothing to close: the counts live in this process."""

    def begin(self, username: str, address: str | None) -> _Attempt:
        now = self._now()
        # Without a known address (a local caller), only the user name is limited.
        keys = ("u:" + username,) + (("a:" + address,) if address else ())
        waits = [self._wait(key, now) for key in keys]
        if max(waits) > 0:
            raise TooManyLoginAttempts(
                "Too many failed logins; try again later.", retry_after=max(waits)
            )
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)
        if len(self._failures) > _MAX_TRACKED:
            self._prune(now)
        return _Attempt(self, keys, now)

    def _wait(self, key: str, now: float) -> float:
        stamps = self._failures.get(key)
        if not stamps:
            return 0.0
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        if len(stamps) < self.max_failures:
            return 0.0
        return stamps[-self.max_failures] + self.window - now

    def forget(self, key: str, at: float) -> None:
        stamps = self._failures.get(key)
        if stamps is not None and at in stamps:
            stamps.remove(at)

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        for key, stamps in list(self._failures.items()):
            if not stamps or stamps[-1] <= now - self.window:
                del self._failures[key]


# KEYS: the attempt's counters (the name's, then the address's), each a sorted set of the
# window's attempts. ARGV: now, window (s), max failures, this attempt's member. Returns the
# seconds to wait, as a string (Lua's numbers reach Redis as integers), "0" once counted.
_TAKE = """
local now, window, most = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local wait = 0
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local n = redis.call('ZCARD', key)
  if n >= most then
    local nth = redis.call('ZRANGE', key, n - most, n - most, 'WITHSCORES')[2]
    wait = math.max(wait, tonumber(nth) + window - now)
  end
end
if wait > 0 then return tostring(wait) end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
end
return '0'
"""


class _RedisAttempt:
    def __init__(self, limiter: RedisLoginLimiter, keys: list[str], member: str) -> None:
        self._limiter = limiter
        self._keys = keys
        self._member = member

    async def succeeded(self) -> None:
        name_key, *address_key = self._keys
        async with self._limiter.redis.pipeline(transaction=True) as pipe:
            for key in address_key:
                pipe.zrem(key, self._member)
            pipe.delete(name_key)
            await pipe.execute()


class RedisLoginLimiter:
    """``FailedLoginLimiter``'s window, kept in Redis so that every process and instance
    counts the same failures: the limit holds in total, not per process. Each name's and each
    address's attempts are a sorted set ``{prefix}{kind}:u:NAME`` / ``…:a:ADDRESS`` (``kind``
    keeps sign-ups apart from logins), checked and added to by one Lua script, which Redis runs
    atomically, so parallel guesses on any processes cannot slip past the limit. A key expires
    one window after its last attempt. Redis unreachable, a login fails (an error, not a
    login without a limit)."""

    def __init__(
        self,
        url: str,
        max_failures: int,
        window: float,
        clock: Callable[[], float],
        *,
        prefix: str = "chatgate:",
        kind: str = "login",
    ) -> None:
        import redis.asyncio as aioredis

        self.max_failures = max_failures
        self.window = window
        self._now = clock
        self._prefix = f"{prefix}{kind}:"
        self.redis: Any = aioredis.from_url(url, decode_responses=True)
        self._take = self.redis.register_script(_TAKE)

    async def take(self, username: str, address: str | None) -> Attempt:
        now = self._now()
        keys = [self._prefix + "u:" + username]
        if address:  # without a known address (a local caller), only the name is limited
            keys.append(self._prefix + "a:" + address)
        member = f"{now!r}:{secrets.token_hex(6)}"
        wait = float(
            await self._take(keys=keys, args=[repr(now), self.window, self.max_failures, member])
        )
        if wait > 0:
            raise TooManyLoginAttempts("Too many failed logins; try again later.", retry_after=wait)
        return _RedisAttempt(self, keys, member)

    async def close(self) -> None:
        await self.redis.aclose()


def login_limiter(
    max_failures: int,
    window: float,
    clock: Callable[[], float],
    *,
    redis_url: str | None = None,
    prefix: str = "chatgate:",
    kind: str = "login",
) -> LoginLimiter:
    """In Redis when it is configured (several processes or instances count together), in
    process otherwise."""
    if redis_url:
        return RedisLoginLimiter(redis_url, max_failures, window, clock, prefix=prefix, kind=kind)
    return FailedLoginLimiter(max_failures, window, clock)


class LoginService:
    def __init__(
        self,
        accounts: AccountService,
        codec: JwtCodec,
        limiter: LoginLimiter,
        db: Database,
    ) -> None:
        self.accounts = accounts
        self.codec = codec
        self.limiter = limiter
        self._db = db

    async def check_password(self, username: str, password: str, address: str | None) -> User:
        """The user, if the password is theirs; one answer for every kind of failure."""
        try:
            attempt = await self.limiter.take(username[:64], address)
        except TooManyLoginAttempts:
            log.warning("login refused: too many failed attempts (from %s)", address)
            raise
        user: User | None = None
        if 0 < len(username) <= 64:
            async with self._db.session() as session:
                user = await session.scalar(select(User).where(User.name == username))
        stored = user.password_hash if user is not None else None
        right = await self.accounts.passwords.verify(stored, password)
        if not right or user is None:
            # A name that is not a user's is never logged: it is often a password typed
            # into the wrong field.
            who = f"user {user.name}" if user is not None else "an unknown user name"
            why = " (disabled)" if user is not None and user.disabled else ""
            log.info("login failed for %s%s (from %s)", who, why, address)
            raise InvalidCredentials(_BAD_LOGIN)
        if user.pending:
            log.info(
                "login refused for user %s: waiting for approval (from %s)", user.name, address
            )
            raise AccountPending(_PENDING)
        if user.disabled:
            # Only someone who knows the password learns the account rests, so the answer
            # reveals no more than a login would. It still counts as a failure: guessing
            # goes no faster than against an account in use.
            log.info("login refused for user %s: disabled (from %s)", user.name, address)
            raise AccountDisabled(_DISABLED)
        await attempt.succeeded()
        log.debug("user %s logged in (from %s)", user.name, address)
        return user

    async def login(self, username: str, password: str, address: str | None) -> Session:
        user = await self.check_password(username, password, address)
        return self._issue(user)

    def _issue(self, user: User) -> Session:
        claims = self.codec.new_claims(user.id, user.token_version)
        return Session(self.codec.encode(claims), claims, user_info(user))

    async def logout(self, principal: Principal, *, everywhere: bool = False) -> None:
        log.info("user %s logged out%s", principal.username, " everywhere" if everywhere else "")
        if everywhere:
            await self.accounts.end_all_sessions(principal.user_id)
        else:
            await self.accounts.end_session(principal)

    async def change_password(
        self, principal: Principal, current: str, new: str, address: str | None
    ) -> Session:
        """A new password voids every login token; the caller gets a fresh one."""
        await self.check_password(principal.username, current, address)
        await self.accounts.set_password(principal.username, new, by=principal.actor)
        log.info("user %s changed their password", principal.username)
        return self._issue(await self.accounts.get_user(principal.username))

    async def chatapi_token(
        self, username: str, password: str, address: str | None
    ) -> tuple[Session, bool]:
        """The user's one ChatAPI token: the same one while it is valid (``False``), a new
        one otherwise (``True``). Only its claims are stored."""
        user = await self.check_password(username, password, address)
        now = self.codec.now()
        async with self._db.session() as session, session.begin():
            row = await session.get(ChatApiToken, user.id)
            if row is not None and await self._still_valid(session, row, user, now):
                claims = Claims(user.id, row.issued_at, row.expires_at, row.jti, row.token_version)
                return Session(self.codec.encode(claims), claims, user_info(user)), False
            claims = self.codec.new_claims(user.id, user.token_version)
            if row is None:
                row = ChatApiToken(user_id=user.id)
                session.add(row)
            row.jti = claims.jti
            row.issued_at = claims.issued_at
            row.expires_at = claims.expires_at
            row.token_version = claims.version
        log.info("new ChatAPI token %s for user %s", claims.jti, user.name)
        return Session(self.codec.encode(claims), claims, user_info(user)), True

    @staticmethod
    async def _still_valid(
        session: AsyncSession, row: ChatApiToken, user: User, now: float
    ) -> bool:
        if row.expires_at <= now or row.token_version != user.token_version:
            return False
        return await session.get(RevokedToken, row.jti) is None
