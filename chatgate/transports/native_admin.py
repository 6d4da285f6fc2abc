"""The native admin API (``/api/v1/admin/…``): users, their quotas and keys, everyone's usage.

Every route needs an administrator; a normal user gets 403. Thin, like every transport.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile as StarletteUpload

from chatgate.core.audit import AuditRecord
from chatgate.core.errors import Conflict, InvalidRequest, PayloadTooLarge
from chatgate.core.usage_series import By, DailySeries, chart_csv
from chatgate.core.user_import import MAX_BYTES as MAX_IMPORT_BYTES
from chatgate.core.user_import import UserImport
from chatgate.transports.account_schemas import (
    MAX_ID,
    KeyId,
    KeyIn,
    KeyOut,
    NewKeyOut,
    NewUserOut,
    Quota,
    QuotaIn,
    UsageOut,
    UsageRowOut,
    UserIn,
    UserOut,
    UserPatch,
)
from chatgate.transports.http_common import StrictRoute
from chatgate.transports.native_accounts import (
    Admin,
    From,
    GroupBy,
    ServicesDep,
    To,
    day_range,
    parse_groups,
)

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], route_class=StrictRoute)


class TodayOut(BaseModel):
    requests: int
    tokens: int


class AdminUserOut(UserOut):
    limits: Quota = Field(
        description="The limits that apply: the user's own, else the role's default; null is "
        "no limit."
    )
    today: TodayOut = Field(description="Today's counted requests and tokens.")


@router.get("/users")
async def list_users(
    admin: Admin,
    services: ServicesDep,
    q: Annotated[str | None, Query(max_length=64, description="part of a name")] = None,
) -> list[AdminUserOut]:
    """Every user (or those whose name holds ``q``), with the limits that apply to them and
    what they used today."""
    users = await services.accounts.list_users()
    if q:
        users = [u for u in users if q.casefold() in u.name.casefold()]
    today = services.usage_queries.days_back(1)[1]
    rows = await services.usage_queries.report(start=today, end=today, group_by=("user",))
    used = {
        r.user: TodayOut(requests=r.requests, tokens=r.prompt_tokens + r.completion_tokens)
        for r in rows
    }
    return [
        AdminUserOut(
            **UserOut.of(u).model_dump(),
            limits=Quota(**asdict(services.accounts.limits_for(u.role, u.quota))),
            today=used.get(u.name, TodayOut(requests=0, tokens=0)),
        )
        for u in users
    ]


@router.post("/users", status_code=201)
async def create_user(body: UserIn, admin: Admin, services: ServicesDep) -> NewUserOut:
    """Add a user. Without a password one is generated and shown in this answer once; it is
    one-time unless ``one_time`` is false: the user's first login may only choose a new one."""
    info, generated = await services.accounts.create_user_for(
        body.name, body.password, role=body.role, one_time=body.one_time, by=admin.actor
    )
    return NewUserOut(**UserOut.of(info).model_dump(), password=generated)


@router.get("/users/{name}")
async def get_user(name: str, admin: Admin, services: ServicesDep) -> UserOut:
    return UserOut.of(await services.accounts.user_info_of(name))


@router.patch("/users/{name}")
async def update_user(
    name: str, body: UserPatch, admin: Admin, services: ServicesDep
) -> NewUserOut:
    """Set a role, a status (``active`` approves a pending account), disable or enable, reset
    a password (``password``, or ``generate_password``: shown in this answer once, one-time
    unless ``one_time`` is false). Disabling, demoting or a new password
    ends every login of that user at once."""
    if name == admin.username and (
        body.disabled or body.role == "user" or body.status in ("disabled", "pending")
    ):
        raise Conflict("Administrators cannot disable or demote themselves.")
    values: dict[str, Any] = {}
    if body.role is not None:
        values["role"] = body.role
    if body.disabled is not None:
        values["disabled"] = body.disabled
    if body.status is not None:
        values["status"] = body.status
    if body.password is not None and body.generate_password:
        raise InvalidRequest("Send a password or generate_password, not both.", param="password")
    if body.one_time is not None and body.password is None and not body.generate_password:
        raise InvalidRequest("one_time goes with a new password.", param="one_time")
    info, generated = None, None
    if body.password is not None or body.generate_password:
        info, generated = await services.accounts.reset_password(
            name, body.password, one_time=body.one_time, by=admin.actor
        )
    if values:
        info = await services.accounts.update_user(name, by=admin.actor, **values)
    if info is None:
        info = await services.accounts.user_info_of(name)
    return NewUserOut(**UserOut.of(info).model_dump(), password=generated)


@router.put("/users/{name}/quota")
async def set_user_quota(name: str, body: QuotaIn, admin: Admin, services: ServicesDep) -> UserOut:
    """Set the fields given (null: back to the default, -1: no limit); others stay."""
    limits = body.model_dump(exclude_unset=True)
    return UserOut.of(await services.accounts.set_quota(name, by=admin.actor, **limits))


@router.post("/users/{name}/logout", status_code=204)
async def logout_user(name: str, admin: Admin, services: ServicesDep) -> None:
    """End every login of a user (their keys keep working)."""
    user = await services.accounts.get_user(name)
    await services.accounts.end_all_sessions(user.id)


@router.get("/users/{name}/keys")
async def list_user_keys(name: str, admin: Admin, services: ServicesDep) -> list[KeyOut]:
    user = await services.accounts.get_user(name)
    return [KeyOut.of(k) for k in await services.accounts.list_keys(user.id)]


@router.post("/users/{name}/keys", status_code=201)
async def create_user_key(name: str, body: KeyIn, admin: Admin, services: ServicesDep) -> NewKeyOut:
    plain, info = await services.accounts.create_key(
        name, label=body.name, expires_days=body.expires_days, by=admin.actor
    )
    return NewKeyOut(key=plain, **KeyOut.of(info).model_dump())


@router.get("/keys")
async def list_keys(admin: Admin, services: ServicesDep) -> list[KeyOut]:
    return [KeyOut.of(k) for k in await services.accounts.list_keys()]


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: KeyId, admin: Admin, services: ServicesDep) -> KeyOut:
    return KeyOut.of(await services.accounts.revoke_key(key_id, by=admin.actor))


@router.put("/keys/{key_id}/quota")
async def set_key_quota(
    key_id: KeyId, body: QuotaIn, admin: Admin, services: ServicesDep
) -> KeyOut:
    """A key's own limits, binding its requests on top of its owner's (null or -1: none)."""
    limits = body.model_dump(exclude_unset=True)
    return KeyOut.of(await services.accounts.set_key_quota(key_id, by=admin.actor, **limits))


@router.get("/usage")
async def usage(
    admin: Admin,
    services: ServicesDep,
    start: From = None,
    end: To = None,
    user: str | None = None,
    group_by: GroupBy = "",
) -> UsageOut:
    """Everyone's usage (or one user's), grouped by user, day and model unless told."""
    first, last = day_range(services, start, end)
    groups = parse_groups(group_by, ("user", "day", "model"))
    user_id = (await services.accounts.get_user(user)).id if user else None
    rows = await services.usage_queries.report(
        start=first, end=last, user_id=user_id, group_by=groups
    )
    return UsageOut(start=first, end=last, group_by=groups, rows=[UsageRowOut.of(r) for r in rows])


MAX_TIME = 1e11  # Unix seconds, about the year 5138: beyond any log entry, within a float's
# exact range and the database's


class AuditEntryOut(BaseModel):
    id: int
    at: float
    actor: str
    actor_id: int | None
    action: str
    target: str
    details: dict[str, Any]

    @classmethod
    def of(cls, record: AuditRecord) -> AuditEntryOut:
        return cls(
            id=record.id,
            at=record.at,
            actor=record.actor,
            actor_id=record.actor_id,
            action=record.action,
            target=record.target,
            details=record.details,
        )


class AuditPageOut(BaseModel):
    data: list[AuditEntryOut]
    next_before: int | None


@router.get("/audit")
async def audit_log(
    admin: Admin,
    services: ServicesDep,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="`user.quota`, or a family: `user`")
    ] = None,
    target: Annotated[str | None, Query(max_length=255)] = None,
    since: Annotated[
        float | None, Query(ge=0, le=MAX_TIME, description="Unix time, included")
    ] = None,
    until: Annotated[
        float | None, Query(ge=0, le=MAX_TIME, description="Unix time, excluded")
    ] = None,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="`next_before` of the last page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPageOut:
    """Who changed users, quotas, keys, providers and models, and when; newest first."""
    page = await services.accounts.audit.page(
        actor=actor,
        action=action,
        target=target,
        since=since,
        until=until,
        before=before,
        limit=limit,
    )
    return AuditPageOut(
        data=[AuditEntryOut.of(r) for r in page.items], next_before=page.next_before
    )


# ---- usage per day, for charts --------------------------------------------------------------


class PercentilesOut(BaseModel):
    p50: list[float | None]
    p95: list[float | None]


class SeriesOut(BaseModel):
    key: str = Field(description="The user's name or the model, as `by` says.")
    requests: list[int]
    tokens: list[int]
    cost: list[float]


class DailyUsageOut(BaseModel):
    start: str
    end: str
    by: str
    timezone: str = Field(description="The zone whose midnights divide the days.")
    days: list[str]
    series: list[SeriesOut] = Field(
        description="Counted requests, prompt plus completion tokens and cost per day, one "
        "series per user or model, largest first."
    )
    errors: list[int] = Field(
        description="Requests that failed once admitted, upstream 429s excepted."
    )
    rate_limited: list[int] = Field(
        description="Requests answered 429: refused by a limit, or the upstream's 429."
    )
    first_token_ms: PercentilesOut = Field(description="Of the requests answered in full.")
    latency_ms: PercentilesOut = Field(description="Of the requests answered in full.")

    @classmethod
    def of(cls, found: DailySeries) -> DailyUsageOut:
        return cls(
            start=found.start,
            end=found.end,
            by=found.by,
            timezone=found.zone,
            days=found.days,
            series=[SeriesOut(**asdict(s)) for s in found.series],
            errors=found.errors,
            rate_limited=found.rate_limited,
            first_token_ms=PercentilesOut(**asdict(found.first_token_ms)),
            latency_ms=PercentilesOut(**asdict(found.latency_ms)),
        )


Day = Annotated[date | None, Query(description="YYYY-MM-DD, in the server's time zone.")]
ByQuery = Annotated[Literal["user", "model"], Query(description="Stack by user or by model.")]
Chart = Literal["requests", "tokens", "cost", "errors", "latency"]


async def _daily(
    services: ServicesDep, start: date | None, end: date | None, by: By, user: str | None
) -> DailySeries:
    user_id = (await services.accounts.get_user(user)).id if user else None
    return await services.usage_series.daily(start=start, end=end, by=by, user_id=user_id)


@router.get("/usage/daily")
async def daily_usage(
    admin: Admin,
    services: ServicesDep,
    start: Day = None,
    end: Day = None,
    by: ByQuery = "user",
    user: Annotated[str | None, Query(max_length=64, description="Only this user.")] = None,
) -> DailyUsageOut:
    """Usage per day for charts: by default the last 14 days, at most 366 (422 past that or
    with ``start`` after ``end``)."""
    return DailyUsageOut.of(await _daily(services, start, end, by, user))


@router.get(
    "/usage/daily.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "A header row, then the rows."}},
)
async def daily_usage_csv(
    admin: Admin,
    services: ServicesDep,
    start: Day = None,
    end: Day = None,
    by: ByQuery = "user",
    user: Annotated[str | None, Query(max_length=64)] = None,
    chart: Annotated[Chart, Query(description="Whose rows to give.")] = "requests",
) -> Response:
    """The rows behind one chart of ``/usage/daily``, as a CSV file."""
    found = await _daily(services, start, end, by, user)
    name = f"usage-{chart}-{found.start}-{found.end}.csv"
    return Response(
        chart_csv(found, chart),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


# ---- users from a CSV file ----------------------------------------------------------------


class ImportRowOut(BaseModel):
    line: int = Field(description="The row's line in the file, from 1.")
    username: str | None
    result: Literal["created", "skipped", "refused"]
    reason: str | None


class UsersImportOut(BaseModel):
    created: int
    skipped: int
    refused: int
    rows: list[ImportRowOut] = Field(description="Every row but the header, in file order.")


@router.post(
    "/users/import",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "`username,password` rows (a header row is optional), UTF-8, at "
            f"most {MAX_IMPORT_BYTES} bytes: the file as the body (`text/csv`), or as the "
            "field `file` of a `multipart/form-data` form (with an API key: the login cookie "
            "takes only `text/csv`).",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    },
)
async def import_users(request: Request, admin: Admin, services: ServicesDep) -> UsersImportOut:
    """Create users from a CSV of `username,password`: a user who exists or a name repeated in
    the file is skipped, a malformed row refused with the reason; passwords are hashed and never
    shown again. 413 past the size limit."""
    data = await _users_file(request)
    report = await UserImport(services.db, services.accounts, services.clock.now).run(
        data, by=admin.actor
    )
    return UsersImportOut(
        created=report.count("created"),
        skipped=report.count("skipped"),
        refused=report.count("refused"),
        rows=[ImportRowOut(**asdict(row)) for row in report.rows],
    )


async def _users_file(request: Request) -> bytes:
    too_large = PayloadTooLarge(f"A users file is at most {MAX_IMPORT_BYTES} bytes.")
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "multipart/form-data":
        parts: list[bytes] = []
        size = 0
        async for part in request.stream():
            size += len(part)
            if size > MAX_IMPORT_BYTES:
                raise too_large
            parts.append(part)
        return b"".join(parts)
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get("file")
        if not isinstance(upload, StarletteUpload):
            raise InvalidRequest("The form needs the CSV file in its field 'file'.", param="file")
        data = await upload.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise too_large
    return data
