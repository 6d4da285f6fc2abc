"""Users, password hashes and API keys, and turning a Bearer credential into a ``Principal``.

API keys are ``sk-cg-`` + 32 random bytes (urlsafe base64). Only their SHA-256 is stored (they
carry 256 bits of entropy, so a slow hash adds nothing), with a short visible prefix for lists.
Passwords are hashed with argon2id, off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update

from chatgate.core.errors import AuthenticationFailed, Conflict, InvalidRequest, NotFound
from chatgate.store.db import Database
from chatgate.store.tables import ApiKey, User
from chatgate.store.writer import BatchWriter

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
    """Who is asking: the user, the key (if any) and the limits that apply to them."""

    user_id: int
    username: str
    role: str = "user"
    key_id: int | None = None
    limits: Limits = field(default_factory=Limits)
    token_version: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(slots=True)
class UserInfo:
    id: int
    name: str
    role: str
    disabled: bool
    created_at: float
    quota: dict[str, int | None]


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

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (
            self.expires_at is None or self.expires_at > time.time()
        )


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


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
    ) -> None:
        self._db = db
        self._writer = writer
        self.default_limits = default_limits
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._now = clock
        self.passwords = Passwords()

    # ---- authentication (hot path) -----------------------------------------------------------

    async def authenticate(self, credential: str) -> Principal:
        """Turn a Bearer credential (an API key) into a Principal."""
        if credential.startswith(KEY_PREFIX):
            return await self.authenticate_key(credential)
        raise AuthenticationFailed("Incorrect API key provided.")

    async def authenticate_key(self, key: str) -> Principal:
        """Resolve an API key, from the in-process cache when it is fresh."""
        digest = hash_key(key)
        now = self._now()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        principal = await self._load_key(digest, now)
        self._cache[digest] = (principal, now + self._cache_seconds)
        if len(self._cache) > 100_000:
            self._evict(now)
        return principal

    async def _load_key(self, digest: str, now: float) -> Principal:
        async with self._db.session() as session:
            row = (
                await session.execute(
                    select(ApiKey, User)
                    .join(User, User.id == ApiKey.user_id)
                    .where(ApiKey.key_hash == digest)
                )
            ).first()
        if row is None:
            raise AuthenticationFailed("Incorrect API key provided.")
        key, user = row
        if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
            raise AuthenticationFailed("This API key has been revoked or has expired.")
        if user.disabled:
            raise AuthenticationFailed("This account is disabled.")
        self._writer.update(ApiKey, {"id": key.id}, {"last_used_at": now})
        return self.principal_for(user, key)

    def principal_for(self, user: User, key: ApiKey | None = None) -> Principal:
        values: dict[str, int | None] = {}
        for name in QUOTA_FIELDS:
            value = getattr(key, name, None) if key is not None else None
            if value is None:
                value = getattr(user, name)
            if value is None:
                value = getattr(self.default_limits, name)
            values[name] = value if value is None or value >= 0 else None
        return Principal(
            user_id=user.id,
            username=user.name,
            role=user.role,
            key_id=key.id if key is not None else None,
            limits=Limits(**values),
            token_version=user.token_version,
        )

    def invalidate(self, *, user_id: int | None = None, key_id: int | None = None) -> None:
        """Drop cached principals at once (revocation, quota or role change, disabling)."""
        for digest, (principal, _) in list(self._cache.items()):
            if (user_id is not None and principal.user_id == user_id) or (
                key_id is not None and principal.key_id == key_id
            ):
                self._cache.pop(digest, None)

    def _evict(self, now: float) -> None:
        for digest, (_, expires) in list(self._cache.items()):
            if expires <= now:
                self._cache.pop(digest, None)

    # ---- users ------------------------------------------------------------------------------

    async def create_user(
        self, name: str, password: str | None = None, *, role: str = "user"
    ) -> UserInfo:
        validate_username(name)
        if role not in ("user", "admin"):
            raise InvalidRequest("role is 'user' or 'admin'", param="role")
        password_hash = await self.passwords.hash(password) if password is not None else None
        async with self._db.session() as session, session.begin():
            exists = await session.scalar(select(User.id).where(User.name == name))
            if exists is not None:
                raise Conflict(f"user {name!r} already exists")
            user = User(name=name, password_hash=password_hash, role=role, created_at=self._now())
            session.add(user)
            await session.flush()
            return _user_info(user)

    async def get_user(self, name: str) -> User:
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.name == name))
        if user is None:
            raise NotFound(f"no user named {name!r}")
        return user

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
        return [_user_info(u) for u in users]

    async def update_user(self, name: str, **values: Any) -> UserInfo:
        """Change stored fields of a user and drop whatever was cached about them."""
        async with self._db.session() as session, session.begin():
            user = await session.scalar(select(User).where(User.name == name))
            if user is None:
                raise NotFound(f"no user named {name!r}")
            for column, value in values.items():
                setattr(user, column, value)
        self.invalidate(user_id=user.id)
        return _user_info(user)

    async def set_quota(self, name: str, **limits: int | None) -> UserInfo:
        unknown = set(limits) - set(QUOTA_FIELDS)
        if unknown:
            raise InvalidRequest(f"unknown quota fields: {sorted(unknown)}")
        return await self.update_user(name, **limits)

    # ---- keys -------------------------------------------------------------------------------

    async def create_key(
        self, username: str, *, label: str | None = None, expires_days: float | None = None
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
            return plain, _key_info(key, user.name)

    async def list_keys(self, user_id: int | None = None) -> list[KeyInfo]:
        await self._writer.flush()
        stmt = select(ApiKey, User.name).join(User, User.id == ApiKey.user_id).order_by(ApiKey.id)
        if user_id is not None:
            stmt = stmt.where(ApiKey.user_id == user_id)
        async with self._db.session() as session:
            rows = (await session.execute(stmt)).all()
        return [_key_info(key, name) for key, name in rows]

    async def revoke_key(self, key_id: int, *, user_id: int | None = None) -> KeyInfo:
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
        self.invalidate(key_id=key_id)
        return _key_info(key, name)


def _user_info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id,
        name=user.name,
        role=user.role,
        disabled=user.disabled,
        created_at=user.created_at,
        quota={name: getattr(user, name) for name in QUOTA_FIELDS},
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
    )


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


__all__ = [
    "AccountService",
    "KeyInfo",
    "Limits",
    "Principal",
    "UserInfo",
    "constant_time_equal",
    "hash_key",
    "new_api_key",
]
