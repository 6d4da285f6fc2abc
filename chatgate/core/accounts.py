"""Users, password hashes and API keys, and turning a Bearer credential into a ``Principal``.

API keys are ``sk-cg-`` + 32 random bytes (urlsafe base64). Only their SHA-256 is stored (they
carry 256 bits of entropy, so a slow hash adds nothing), with a short visible prefix for lists.
Passwords are hashed with argon2id, off the event loop.

A Bearer credential is an API key or a login JWT. Either is resolved once and then trusted from
an in-process cache for a few seconds (never past the key's or the token's expiry), so the hot
path does not touch the database. Anything that takes rights away or moves limits (revocation,
logout, disabling, demotion, a new password, new quotas) drops the cached entries here at once,
bumps the user's token version where it ends logins, and is recorded as a change (``changes``)
in the same transaction: every other process drops its entries within about a second.

A password an administrator generates (or sets as one-time) marks the account
``password_change_required``: a login with it is good for nothing but choosing a new password
(see ``PasswordChangeRequired``), until the user has chosen their own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.core.audit import Actor, AuditLog
from chatgate.core.changes import Change, ChangeFeed
from chatgate.core.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PasswordChangeRequired,
)
from chatgate.core.jwts import Claims, JwtCodec, looks_like_jwt
from chatgate.store.db import Database
from chatgate.store.tables import ApiKey, RevokedToken, User
from chatgate.store.writer import BatchWriter

log = logging.getLogger("chatgate.accounts")

KEY_PREFIX = "sk-cg-"
VISIBLE_PREFIX_LEN = len(KEY_PREFIX) + 6
QUOTA_FIELDS = ("daily_requests", "daily_tokens", "rpm", "max_streams")
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-@")


@dataclass(frozen=True, slots=True)
class Limits:
    """Effective limits for a caller; ``None`` means unlimited."""

    daily_requests: int | None = None
    daily_tokens: int | None = None
    rpm: int | None = None
    max_streams: int | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the user, the key (if any) and the limits that apply to them.

    ``limits`` are the user's (their own, else the defaults, which administrators do not
    get); ``key_limits`` are the extra limits set on the key in use, which bind that key's
    requests on top of the user's.
    ``session_id`` is the ``jti`` of the login token in use, if that is how they came;
    ``key_expires_at`` is when the key in use expires, if it does (no cache keeps it longer).
    """

    user_id: int
    username: str
    role: str = "user"
    key_id: int | None = None
    limits: Limits = field(default_factory=Limits)
    token_version: int = 0
    key_limits: Limits = field(default_factory=Limits)
    session_id: str | None = None
    key_expires_at: float | None = None
    password_change_required: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> Actor:
        """This caller, as the audit log names who made a change."""
        return Actor(self.user_id, self.username)


@dataclass(slots=True)
class UserInfo:
    id: int
    name: str
    role: str
    disabled: bool
    created_at: float
    quota: dict[str, int | None]
    pending: bool = False
    password_change_required: bool = False

    @property
    def status(self) -> str:
        """``pending`` (waiting for approval), ``disabled`` or ``active``."""
        if self.pending:
            return "pending"
        return "disabled" if self.disabled else "active"


@dataclass(slots=True)
class KeyInfo:
    id: int
    user_id: int
    username: str
    prefix: str
    label: str | None
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None
    quota: dict[str, int | None] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (
            self.expires_at is None or self.expires_at > time.time()
        )


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def generated_password() -> str:
    """A password the server makes for someone: 16 random url-safe characters (96 bits)."""
    return secrets.token_urlsafe(12)


def validate_username(name: str) -> str:
    if not 1 <= len(name) <= 64 or not set(name) <= _NAME_CHARS:
        raise InvalidRequest(
            "a user name is 1-64 characters of letters, digits and _ . - @", param="name"
        )
    return name


class Passwords:
    """argon2id hashing, run in a thread so a login never stalls other streams."""

    def __init__(self) -> None:
        self._hasher = PasswordHasher()
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        if len(password) < 8:
            raise InvalidRequest("a password has at least 8 characters", param="password")
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Same work whether or not the user exists, so timing tells nothing."""
        return await asyncio.to_thread(
            self._verify, stored or self._dummy, password, stored is None
        )

    def _verify(self, stored: str, password: str, dummy: bool) -> bool:
        try:
            ok: bool = self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            ok = False
        return ok and not dummy


class AccountService:
    def __init__(
        self,
        db: Database,
        writer: BatchWriter,
        default_limits: Limits,
        cache_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
        codec: JwtCodec | None = None,
        changes: ChangeFeed | None = None,
    ) -> None:
        self._db = db
        self.changes = changes
        self.audit = AuditLog(db, clock)
        self._writer = writer
        self.default_limits = default_limits
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._loading: dict[str, asyncio.Task[Principal]] = {}
        self._generation = 0  # moves on at every invalidation
        self._refresh_window = cache_seconds / 5
        self._now = clock
        self.passwords = Passwords()
        self.codec = codec

    # ---- authentication (hot path) -----------------------------------------------------------

    async def authenticate(self, credential: str, *, changing_password: bool = False) -> Principal:
        """Turn a Bearer credential (an API key or a login JWT) into a Principal.

        A login that must first choose a new password is refused (``PasswordChangeRequired``)
        unless ``changing_password``: the caller is about to change the password (or end the
        login), the only things such a login may do."""
        if credential.startswith(KEY_PREFIX):
            return await self.authenticate_key(credential)
        if self.codec is not None and looks_like_jwt(credential):
            return await self.authenticate_jwt(credential, changing_password=changing_password)
        raise AuthenticationFailed("Incorrect API key provided.")

    async def authenticate_jwt(self, token: str, *, changing_password: bool = False) -> Principal:
        """Resolve a login token; cached (never past its expiry) after the first check."""
        assert self.codec is not None
        now = self._now()
        cached = self._cache.get(token)
        if cached is not None and cached[1] > now:
            principal = cached[0]
        else:
            claims = self.codec.decode(token)
            generation = self._generation
            principal = await self._load_session(claims)
            if generation == self._generation:  # else a change came during the look-up
                until = min(now + self._cache_seconds, claims.expires_at)
                self._cache[token] = (principal, until)
        if principal.password_change_required and not changing_password:
            raise PasswordChangeRequired(
                "This login used a one-time password from an administrator: choose a new "
                "password before anything else (log in again with 'new_password')."
            )
        return principal

    async def _load_session(self, claims: Claims) -> Principal:
        async with self._db.session() as session:
            user = await session.get(User, claims.user_id)
            revoked = await session.get(RevokedToken, claims.jti)
        if user is None or revoked is not None or user.token_version != claims.version:
            log.debug("login token %s refused: ended or superseded", claims.jti)
            raise AuthenticationFailed("This login token is no longer valid; log in again.")
        if user.disabled:
            raise AuthenticationFailed("This account is disabled.")
        principal = self.principal_for(user, session_id=claims.jti)
        if user.password_change_required:
            principal = dataclasses.replace(principal, password_change_required=True)
        return principal

    async def authenticate_key(self, key: str) -> Principal:
        """Resolve an API key, from the in-process cache when it is fresh.

        Concurrent requests with a key that is not cached share one database look-up, and a
        key in use is looked up again in the background shortly before its entry expires, so
        a busy key never makes its requests wait on the database."""
        digest = hash_key(key)
        now = self._now()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            principal, until = cached
            if (
                until - now < self._refresh_window
                and until != principal.key_expires_at  # no look-up makes an expiring key live
                and digest not in self._loading
            ):
                self._lookup(digest, now)
            return principal
        task = self._loading.get(digest) or self._lookup(digest, now)
        return await asyncio.shield(task)

    def _lookup(self, digest: str, now: float) -> asyncio.Task[Principal]:
        task = asyncio.ensure_future(self._load_key(digest, now))
        self._loading[digest] = task
        generation = self._generation
        task.add_done_callback(lambda done: self._looked_up(digest, now, generation, done))
        return task

    def _looked_up(
        self, digest: str, now: float, generation: int, task: asyncio.Task[Principal]
    ) -> None:
        self._loading.pop(digest, None)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, AuthenticationFailed):
            self._cache.pop(digest, None)  # revoked or gone: the next request is refused
        if error is not None or generation != self._generation:
            return  # a failed look-up, or one that began before an invalidation: not kept
        principal = task.result()
        until = now + self._cache_seconds
        if principal.key_expires_at is not None:
            until = min(until, principal.key_expires_at)  # an expired key stops at once
        self._cache[digest] = (principal, until)
        if len(self._cache) > 100_000:
            self._evict(now)

    async def _load_key(self, digest: str, now: float) -> Principal:
        # A plain Core select on a connection: the ORM session around the same query cost
        # twice the CPU, most of it in round trips to the SQLite thread.
        async with self._db.engine.connect() as conn:
            row = (await conn.execute(_KEY_LOOKUP, {"digest": digest})).first()
        if row is None:
            log.debug("unknown API key refused")
            raise AuthenticationFailed("Incorrect API key provided.")
        if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
            log.debug("API key %s (%s…) refused: revoked or expired", row.key_id, row.prefix)
            raise AuthenticationFailed("This API key has been revoked or has expired.")
        if row.disabled:
            raise AuthenticationFailed("This account is disabled.")
        self._writer.update(ApiKey, {"id": row.key_id}, {"last_used_at": now})
        mapping = row._mapping
        principal = self._principal(
            row.user_id,
            row.name,
            row.role,
            row.token_version,
            {name: mapping[f"user_{name}"] for name in QUOTA_FIELDS},
            row.key_id,
            {name: mapping[f"key_{name}"] for name in QUOTA_FIELDS},
        )
        if row.expires_at is None:
            return principal
        return dataclasses.replace(principal, key_expires_at=row.expires_at)

    def principal_for(
        self, user: User, key: ApiKey | None = None, *, session_id: str | None = None
    ) -> Principal:
        return self._principal(
            user.id,
            user.name,
            user.role,
            user.token_version,
            {name: getattr(user, name) for name in QUOTA_FIELDS},
            key.id if key is not None else None,
            {name: getattr(key, name) for name in QUOTA_FIELDS} if key is not None else {},
            session_id,
        )

    def _principal(
        self,
        user_id: int,
        username: str,
        role: str,
        token_version: int,
        user_limits: dict[str, int | None],
        key_id: int | None,
        key_limits: dict[str, int | None],
        session_id: str | None = None,
    ) -> Principal:
        """The user's limits (see ``limits_for``) and the key's own extra limits (only those
        set on the key)."""
        key_values: dict[str, int | None] = {}
        for name in QUOTA_FIELDS:
            own = key_limits.get(name)
            key_values[name] = own if own is not None and own >= 0 else None
        return Principal(
            user_id=user_id,
            username=username,
            role=role,
            key_id=key_id,
            limits=self.limits_for(role, user_limits),
            token_version=token_version,
            key_limits=Limits(**key_values),
            session_id=session_id,
        )

    def limits_for(self, role: str, own: dict[str, int | None]) -> Limits:
        """A user's effective limits: their own where set (negative means none), else the
        defaults for a user; an administrator has none unless their own are set, so the
        defaults meant for users never lock out the people who manage them."""
        values: dict[str, int | None] = {}
        for name in QUOTA_FIELDS:
            value = own.get(name)
            if value is None and role != "admin":
                value = getattr(self.default_limits, name)
            values[name] = value if value is None or value >= 0 else None
        return Limits(**values)

    def invalidate(
        self,
        *,
        user_id: int | None = None,
        key_id: int | None = None,
        session_id: str | None = None,
    ) -> None:
        """Drop cached principals at once (revocation, logout, quota or role change,
        disabling)."""
        self._generation += 1
        for digest, (principal, _) in list(self._cache.items()):
            if (
                (user_id is not None and principal.user_id == user_id)
                or (key_id is not None and principal.key_id == key_id)
                or (session_id is not None and principal.session_id == session_id)
            ):
                self._cache.pop(digest, None)

    def forget_everything(self) -> None:
        """Drop every cached principal (changes were missed; each is looked up again)."""
        self._generation += 1
        self._cache.clear()

    def heard(self, change: Change | None) -> None:
        """A change made elsewhere (another process, or this one a moment ago)."""
        if change is None:
            self.forget_everything()
        else:
            self.invalidate(
                user_id=change.user_id, key_id=change.key_id, session_id=change.session_id
            )

    async def _record(self, session: AsyncSession, change: Change) -> None:
        if self.changes is not None:
            await self.changes.record(session, change)

    def _audit(
        self,
        session: AsyncSession,
        by: Actor | None,
        action: str,
        target: str,
        details: dict[str, Any],
    ) -> None:
        """Log the change in its own transaction; no actor means the operator's command line."""
        self.audit.add(session, by or Actor.operator(), action, target, details)

    # ---- login tokens -----------------------------------------------------------------------

    async def end_session(self, principal: Principal) -> None:
        """Void the login token the principal came with (a logout on one device)."""
        if principal.session_id is None:
            return
        async with self._db.session() as session, session.begin():
            if await session.get(RevokedToken, principal.session_id) is None:
                expires = self._now() + (self.codec.lifetime if self.codec else 0)
                session.add(
                    RevokedToken(
                        jti=principal.session_id, user_id=principal.user_id, expires_at=expires
                    )
                )
            await self._record(session, Change(session_id=principal.session_id))
        self.invalidate(session_id=principal.session_id)

    async def end_all_sessions(self, user_id: int) -> None:
        """Void every login token of a user at once (log out everywhere)."""
        async with self._db.session() as session, session.begin():
            await session.execute(
                update(User).where(User.id == user_id).values(token_version=User.token_version + 1)
            )
            await self._record(session, Change(user_id=user_id))
        self.invalidate(user_id=user_id)

    def _evict(self, now: float) -> None:
        for digest, (_, expires) in list(self._cache.items()):
            if expires <= now:
                self._cache.pop(digest, None)

    # ---- users ------------------------------------------------------------------------------

    async def create_user(
        self,
        name: str,
        password: str | None = None,
        *,
        role: str = "user",
        by: Actor | None = None,
        one_time: bool = False,
    ) -> UserInfo:
        """A new user; ``one_time``: the password is for their first login only, which may do
        nothing but choose a new one."""
        validate_username(name)
        if role not in ("user", "admin"):
            raise InvalidRequest("role is 'user' or 'admin'", param="role")
        if one_time and password is None:
            raise InvalidRequest("a one-time password needs a password", param="one_time")
        password_hash = await self.passwords.hash(password) if password is not None else None
        async with self._db.session() as session, session.begin():
            exists = await session.scalar(select(User.id).where(User.name == name))
            if exists is not None:
                raise Conflict(f"user {name!r} already exists")
            user = User(
                name=name,
                password_hash=password_hash,
                role=role,
                created_at=self._now(),
                password_change_required=one_time,
            )
            session.add(user)
            await session.flush()
            shown = "none" if password is None else "one-time" if one_time else "set"
            self._audit(session, by, "user.create", name, {"role": role, "password": shown})
            return user_info(user)

    async def create_user_for(
        self,
        name: str,
        password: str | None,
        *,
        role: str = "user",
        one_time: bool | None = None,
        by: Actor | None = None,
    ) -> tuple[UserInfo, str | None]:
        """A user an administrator adds: without a password one is generated, and returned
        (the only time it is seen). ``one_time`` defaults to whether it was generated: a
        generated password travels through other hands, one the administrator chose may be
        meant to last (and is one-time only if they say so)."""
        generated = generated_password() if password is None else None
        info = await self.create_user(
            name,
            password if generated is None else generated,
            role=role,
            by=by,
            one_time=generated is not None if one_time is None else one_time,
        )
        return info, generated

    async def get_user(self, name: str) -> User:
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.name == name))
        if user is None:
            raise NotFound(f"no user named {name!r}")
        return user

    async def user_info_of(self, name: str) -> UserInfo:
        return user_info(await self.get_user(name))

    async def get_user_by_id(self, user_id: int) -> User:
        async with self._db.session() as session:
            user = await session.get(User, user_id)
        if user is None:
            raise NotFound(f"no user with id {user_id}")
        return user

    async def ensure_user(self, name: str) -> User:
        """The user called ``name``, created (without a password) on first use."""
        try:
            return await self.get_user(name)
        except NotFound:
            with contextlib.suppress(Conflict):
                await self.create_user(name)
            return await self.get_user(name)

    async def list_users(self) -> list[UserInfo]:
        async with self._db.session() as session:
            users = (await session.scalars(select(User).order_by(User.id))).all()
        return [user_info(u) for u in users]

    async def update_user(self, name: str, *, by: Actor | None = None, **values: Any) -> UserInfo:
        """Change stored fields of a user (``status``: active, disabled or pending, stands for
        both flags) and drop whatever was cached about them.

        A new password, disabling or a demotion also voids every login token they hold. A new
        password is the user's own (clears ``password_change_required``) unless the values say
        otherwise.
        """
        if "role" in values and values["role"] not in ("user", "admin"):
            raise InvalidRequest("role is 'user' or 'admin'", param="role")
        status = values.pop("status", None)
        if status is not None:
            if status not in ("active", "disabled", "pending"):
                raise InvalidRequest("status is 'active', 'disabled' or 'pending'", param="status")
            # A pending account is disabled too, so every check that refuses one refuses both.
            values["disabled"] = status != "active"
            values["pending"] = status == "pending"
        if "password_hash" in values:
            values.setdefault("password_change_required", False)
        async with self._db.session() as session, session.begin():
            user = await session.scalar(select(User).where(User.name == name))
            if user is None:
                raise NotFound(f"no user named {name!r}")
            takes_rights = (
                "password_hash" in values
                or values.get("disabled") is True
                or (user.role == "admin" and values.get("role") == "user")
            )
            for column, value in values.items():
                setattr(user, column, value)
            if values.get("disabled") is False:
                user.pending = False  # enabling an account waiting for approval approves it
            if takes_rights:
                user.token_version += 1
            await self._record(session, Change(user_id=user.id))
            action = "user.quota" if set(values) <= set(QUOTA_FIELDS) else "user.update"
            self._audit(session, by, action, name, _shown(values))
        self.invalidate(user_id=user.id)
        changed = ", ".join(sorted("password" if k == "password_hash" else k for k in values))
        log.info("user %s changed (%s)%s", name, changed, "; logins ended" if takes_rights else "")
        return user_info(user)

    async def set_password(self, name: str, password: str, *, by: Actor | None = None) -> UserInfo:
        """Set a new password, which is theirs to keep; every login token of the user stops
        working. A one-time password cannot be chosen again as the new one."""
        user = await self.get_user(name)
        if user.password_change_required and await self.passwords.verify(
            user.password_hash, password
        ):
            raise InvalidRequest(
                "The new password must differ from the one-time password.", param="new_password"
            )
        digest = await self.passwords.hash(password)
        return await self.update_user(name, by=by, password_hash=digest)

    async def reset_password(
        self,
        name: str,
        password: str | None,
        *,
        one_time: bool | None = None,
        by: Actor | None = None,
    ) -> tuple[UserInfo, str | None]:
        """An administrator's new password for a user, generated when none is given and then
        returned (the only time it is seen); ``one_time`` as for ``create_user_for``. Every
        login of the user ends."""
        generated = generated_password() if password is None else None
        digest = await self.passwords.hash(password or generated or "")
        one_time = generated is not None if one_time is None else one_time
        info = await self.update_user(
            name, by=by, password_hash=digest, password_change_required=one_time
        )
        return info, generated

    async def set_quota(
        self, name: str, *, by: Actor | None = None, **limits: int | None
    ) -> UserInfo:
        unknown = set(limits) - set(QUOTA_FIELDS)
        if unknown:
            raise InvalidRequest(f"unknown quota fields: {sorted(unknown)}")
        return await self.update_user(name, by=by, **limits)

    # ---- keys -------------------------------------------------------------------------------

    async def create_key(
        self,
        username: str,
        *,
        label: str | None = None,
        expires_days: float | None = None,
        by: Actor | None = None,
    ) -> tuple[str, KeyInfo]:
        """Make a key; the plain key is returned here once and never stored."""
        if expires_days is not None and expires_days <= 0:
            raise InvalidRequest("expires_days must be positive", param="expires_days")
        user = await self.get_user(username)
        plain = new_api_key()
        now = self._now()
        async with self._db.session() as session, session.begin():
            key = ApiKey(
                user_id=user.id,
                prefix=plain[:VISIBLE_PREFIX_LEN],
                key_hash=hash_key(plain),
                label=label,
                created_at=now,
                expires_at=now + expires_days * 86400 if expires_days else None,
            )
            session.add(key)
            await session.flush()
            details = {"user": user.name, "label": label, "prefix": key.prefix}
            self._audit(session, by, "key.create", f"key {key.id}", details)
            log.info("new API key %s (%s…) for user %s", key.id, key.prefix, user.name)
            return plain, _key_info(key, user.name)

    async def list_keys(self, user_id: int | None = None) -> list[KeyInfo]:
        await self._writer.flush()
        stmt = select(ApiKey, User.name).join(User, User.id == ApiKey.user_id).order_by(ApiKey.id)
        if user_id is not None:
            stmt = stmt.where(ApiKey.user_id == user_id)
        async with self._db.session() as session:
            rows = (await session.execute(stmt)).all()
        return [_key_info(key, name) for key, name in rows]

    async def revoke_key(
        self, key_id: int, *, user_id: int | None = None, by: Actor | None = None
    ) -> KeyInfo:
        """Revoke a key (only the owner's, when ``user_id`` is given); effective at once here."""
        async with self._db.session() as session, session.begin():
            stmt = select(ApiKey, User.name).join(User, User.id == ApiKey.user_id)
            stmt = stmt.where(ApiKey.id == key_id)
            if user_id is not None:
                stmt = stmt.where(ApiKey.user_id == user_id)
            row = (await session.execute(stmt)).first()
            if row is None:
                raise NotFound(f"no key with id {key_id}")
            key, name = row
            if key.revoked_at is None:
                await session.execute(
                    update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=self._now())
                )
                key.revoked_at = self._now()
                details = {"user": name, "prefix": key.prefix}
                self._audit(session, by, "key.revoke", f"key {key_id}", details)
            await self._record(session, Change(key_id=key_id))
        self.invalidate(key_id=key_id)
        log.info("API key %s (%s…) of user %s revoked", key_id, key.prefix, name)
        return _key_info(key, name)

    async def set_key_quota(
        self, key_id: int, *, by: Actor | None = None, **limits: int | None
    ) -> KeyInfo:
        """Set a key's own limits (they bind on top of its owner's); -1 or None clears one."""
        unknown = set(limits) - set(QUOTA_FIELDS)
        if unknown:
            raise InvalidRequest(f"unknown quota fields: {sorted(unknown)}")
        async with self._db.session() as session, session.begin():
            row = (
                await session.execute(
                    select(ApiKey, User.name)
                    .join(User, User.id == ApiKey.user_id)
                    .where(ApiKey.id == key_id)
                )
            ).first()
            if row is None:
                raise NotFound(f"no key with id {key_id}")
            key, name = row
            for column, value in limits.items():
                setattr(key, column, None if value is None or value < 0 else value)
            await self._record(session, Change(key_id=key_id))
            self._audit(session, by, "key.quota", f"key {key_id}", {"user": name, **limits})
        self.invalidate(key_id=key_id)
        return _key_info(key, name)


def _shown(values: dict[str, Any]) -> dict[str, Any]:
    """A change as the audit log shows it: a password is only said to have changed."""
    return {
        ("password" if k == "password_hash" else k): ("changed" if k == "password_hash" else v)
        for k, v in values.items()
        if k != "password_change_required" or v
    }


def user_info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id,
        name=user.name,
        role=user.role,
        disabled=user.disabled,
        created_at=user.created_at,
        quota={name: getattr(user, name) for name in QUOTA_FIELDS},
        pending=bool(user.pending),
        password_change_required=bool(user.password_change_required),
    )


def _key_info(key: ApiKey, username: str) -> KeyInfo:
    return KeyInfo(
        id=key.id,
        user_id=key.user_id,
        username=username,
        prefix=key.prefix,
        label=key.label,
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
        quota={name: getattr(key, name) for name in QUOTA_FIELDS},
    )


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


__all__ = [
    "AccountService",
    "KeyInfo",
    "Limits",
    "PasswordChangeRequired",
    "Principal",
    "UserInfo",
    "constant_time_equal",
    "generated_password",
    "hash_key",
    "new_api_key",
    "user_info",
]


_KEY_LOOKUP = (
    select(
        ApiKey.id.label("key_id"),
        ApiKey.prefix,
        ApiKey.revoked_at,
        ApiKey.expires_at,
        *(getattr(ApiKey, name).label(f"key_{name}") for name in QUOTA_FIELDS),
        User.id.label("user_id"),
        User.name,
        User.role,
        User.disabled,
        User.token_version,
        *(getattr(User, name).label(f"user_{name}") for name in QUOTA_FIELDS),
    )
    .join(User, User.id == ApiKey.user_id)
    .where(ApiKey.key_hash == bindparam("digest"))
)
