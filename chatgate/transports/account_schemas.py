"""The shapes of the native accounts API (``/api/v1/auth``, ``keys``, ``usage``, ``admin``), as
pydantic models so they are checked on the way in and documented at ``/docs``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from chatgate.core.accounts import KeyInfo, UserInfo
from chatgate.core.quotas import ScopeStanding, Standing
from chatgate.core.usage import UsageRow

# Every number that comes from outside has bounds: ids fit the id columns on both databases
# (INTEGER: 64 bits on SQLite, 32 on PostgreSQL), limits stay far below what the usage columns
# hold (and below what a JSON client can hold exactly, 2**53).
MAX_ID = 2**31 - 1
MAX_LIMIT = 10**15
MAX_EXPIRES_DAYS = 36_500

KeyId = Annotated[int, Path(ge=1, le=MAX_ID, description="A key's id.")]


class Incoming(BaseModel):
    """What a client sends: ``NaN`` and infinities are not numbers it may send."""

    model_config = ConfigDict(allow_inf_nan=False)


class Quota(BaseModel):
    """Limits; ``null`` means the default (for a user) or none of its own (for a key), and
    -1 means no limit at all."""

    daily_requests: int | None = None
    daily_tokens: int | None = None
    rpm: int | None = None
    max_streams: int | None = None


class QuotaIn(Incoming):
    """Limits to set: the fields given (null: back to the default, -1: no limit at all)."""

    daily_requests: int | None = Field(default=None, ge=-1, le=MAX_LIMIT)
    daily_tokens: int | None = Field(default=None, ge=-1, le=MAX_LIMIT)
    rpm: int | None = Field(default=None, ge=-1, le=MAX_LIMIT)
    max_streams: int | None = Field(default=None, ge=-1, le=MAX_LIMIT)


class UserOut(BaseModel):
    id: int
    name: str
    role: str
    disabled: bool
    status: str = Field(description="'active', 'disabled' or 'pending' (waits for approval).")
    created_at: float
    quota: Quota
    password_change_required: bool = Field(
        default=False,
        description="The password was set by an administrator as one-time (a generated one is, "
        "by default) and the user has not chosen their own yet: a login may only do that.",
    )

    @classmethod
    def of(cls, info: UserInfo) -> UserOut:
        return cls(
            id=info.id,
            name=info.name,
            role=info.role,
            disabled=info.disabled,
            status=info.status,
            created_at=info.created_at,
            quota=Quota(**info.quota),
            password_change_required=info.password_change_required,
        )


class LoginIn(Incoming):
    username: str = Field(max_length=256)
    password: str = Field(max_length=1024)
    cookie: bool = Field(
        default=False,
        description="Also set the HttpOnly login cookie (not for a login that must first "
        "change its password).",
    )
    new_password: str | None = Field(
        default=None,
        min_length=8,
        max_length=1024,
        description="Change the password while logging in: how a login with a one-time "
        "password chooses its own, after an answer with `password_change_required`.",
    )


class LoginOut(BaseModel):
    token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_at: int = Field(description="Unix time when the token stops working.")
    user: UserOut
    password_change_required: bool = Field(
        default=False,
        description="The password was one-time: this token is refused everywhere with 403 "
        "`password_change_required` (API keys are not), and no cookie was set. Log in again "
        "with `new_password` to choose the user's own.",
    )


class LogoutIn(Incoming):
    everywhere: bool = Field(default=False, description="End every login of this user.")


class PasswordIn(Incoming):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


class MeOut(BaseModel):
    user_id: int
    username: str
    role: str
    via: str = Field(description="'key' or 'login'.")
    key_id: int | None
    limits: Quota
    key_limits: Quota


class KeyIn(Incoming):
    name: str | None = Field(default=None, max_length=128)
    expires_days: float | None = Field(default=None, gt=0, le=MAX_EXPIRES_DAYS)


class KeyOut(BaseModel):
    id: int
    user: str
    prefix: str
    name: str | None
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None
    active: bool
    quota: Quota

    @classmethod
    def of(cls, info: KeyInfo) -> KeyOut:
        return cls(
            id=info.id,
            user=info.username,
            prefix=info.prefix,
            name=info.label,
            created_at=info.created_at,
            expires_at=info.expires_at,
            revoked_at=info.revoked_at,
            last_used_at=info.last_used_at,
            active=info.active,
            quota=Quota(**info.quota),
        )


class NewKeyOut(KeyOut):
    key: str = Field(description="The key itself, shown this once and never stored.")


ONE_TIME = (
    "The user's first login may only choose a new password. By default: yes for a generated "
    "password, no for one given."
)


class UserIn(Incoming):
    name: str = Field(max_length=64)
    password: str | None = Field(
        default=None, min_length=8, max_length=1024, description="Generated when not given."
    )
    role: str = Field(default="user", pattern="^(user|admin)$")
    one_time: bool | None = Field(default=None, description=ONE_TIME)


class NewUserOut(UserOut):
    password: str | None = Field(
        default=None,
        description="The generated password, when the server made one: shown this once, "
        "never stored in the clear.",
    )


class UserPatch(Incoming):
    role: str | None = Field(default=None, pattern="^(user|admin)$")
    disabled: bool | None = None
    status: str | None = Field(
        default=None,
        pattern="^(active|disabled|pending)$",
        description="'active' approves a pending account or enables a disabled one.",
    )
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    generate_password: bool = Field(
        default=False, description="Set a generated password, shown once in the answer."
    )
    one_time: bool | None = Field(
        default=None, description=ONE_TIME.replace("first", "next") + " Only with a new password."
    )


class UsageRowOut(BaseModel):
    day: str | None
    user: str | None
    key_id: int | None
    key_prefix: str | None
    model: str | None
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float

    @classmethod
    def of(cls, row: UsageRow) -> UsageRowOut:
        return cls(
            day=row.day,
            user=row.user,
            key_id=row.key_id,
            key_prefix=row.key_prefix,
            model=row.model,
            requests=row.requests,
            errors=row.errors,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            total_tokens=row.total_tokens,
            cost=row.cost,
        )


class UsageOut(BaseModel):
    start: str = Field(serialization_alias="from")
    end: str = Field(serialization_alias="to")
    group_by: list[str]
    rows: list[UsageRowOut]


class Gauge(BaseModel):
    """One limit and where the caller stands against it; ``limit`` null means none."""

    used: int
    limit: int | None
    remaining: int | None

    @classmethod
    def of(cls, used: int, limit: int | None) -> Gauge:
        return cls(
            used=used, limit=limit, remaining=None if limit is None else max(0, limit - used)
        )


class Gauges(BaseModel):
    requests: Gauge = Field(description="counted requests today")
    tokens: Gauge = Field(description="prompt and completion tokens today")
    rpm: Gauge = Field(description="requests in the last 60 seconds")
    streams: Gauge = Field(description="requests running now")


def gauges_of(scope: ScopeStanding) -> dict[str, Gauge]:
    """A scope's four gauges, as the fields of ``Gauges``."""
    limits, counts = scope.limits, scope.counts
    return {
        "requests": Gauge.of(counts.requests, limits.daily_requests),
        "tokens": Gauge.of(counts.tokens, limits.daily_tokens),
        "rpm": Gauge.of(counts.minute, limits.rpm),
        "streams": Gauge.of(counts.streams, limits.max_streams),
    }


class KeyGauges(Gauges):
    id: int


class TodayOut(Gauges):
    """Today's meter: the caller's own limits, and an API key's when it has limits of its own."""

    day: str
    timezone: str
    resets_at: float = Field(description="Unix time when the day turns and the counts restart.")
    resets_in: float = Field(description="Seconds until then.")
    key: KeyGauges | None

    @classmethod
    def of_standing(cls, standing: Standing) -> TodayOut:
        own, *rest = standing.scopes
        key = rest[0] if rest else None
        return cls(
            day=standing.day,
            timezone=standing.zone,
            resets_at=standing.resets_at,
            resets_in=standing.resets_in,
            key=KeyGauges(id=key.key_id or 0, **gauges_of(key)) if key is not None else None,
            **gauges_of(own),
        )


class ModelOut(BaseModel):
    id: str = Field(description="The name to ask for (an alias is listed as well).")
    model: str = Field(description="The model the name stands for.")
    kind: str = Field(description="'chat' or 'completion' (a legacy prompt model).")
    context_window: int
    owned_by: str


class ModelsOut(BaseModel):
    object: str = "list"
    default: str | None = Field(description="What a conversation with no model of its own uses.")
    data: list[ModelOut]
