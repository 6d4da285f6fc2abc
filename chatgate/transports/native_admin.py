"""The native admin API (``/api/v1/admin/…``): users, their quotas and keys, everyone's usage.

Every route needs an administrator; a normal user gets 403. Thin, like every transport.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from chatgate.core.errors import Conflict
from chatgate.transports.account_schemas import (
    KeyId,
    KeyIn,
    KeyOut,
    NewKeyOut,
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


@router.get("/users")
async def list_users(admin: Admin, services: ServicesDep) -> list[UserOut]:
    return [UserOut.of(u) for u in await services.accounts.list_users()]


@router.post("/users", status_code=201)
async def create_user(body: UserIn, admin: Admin, services: ServicesDep) -> UserOut:
    """Add a user; without a password they can use only the keys made for them."""
    return UserOut.of(await services.accounts.create_user(body.name, body.password, role=body.role))


@router.get("/users/{name}")
async def get_user(name: str, admin: Admin, services: ServicesDep) -> UserOut:
    return UserOut.of(await services.accounts.user_info_of(name))


@router.patch("/users/{name}")
async def update_user(name: str, body: UserPatch, admin: Admin, services: ServicesDep) -> UserOut:
    """Set a role, disable or enable, reset a password. Disabling, demoting or a new password
    ends every login of that user at once."""
    if name == admin.username and (body.disabled or body.role == "user"):
        raise Conflict("Administrators cannot disable or demote themselves.")
    values: dict[str, Any] = {}
    if body.role is not None:
        values["role"] = body.role
    if body.disabled is not None:
        values["disabled"] = body.disabled
    if body.password is not None:
        values["password_hash"] = await services.accounts.passwords.hash(body.password)
    if not values:
        return UserOut.of(await services.accounts.user_info_of(name))
    return UserOut.of(await services.accounts.update_user(name, **values))


@router.put("/users/{name}/quota")
async def set_user_quota(name: str, body: QuotaIn, admin: Admin, services: ServicesDep) -> UserOut:
    """Set the fields given (null: back to the default, -1: no limit); others stay."""
    limits = body.model_dump(exclude_unset=True)
    return UserOut.of(await services.accounts.set_quota(name, **limits))


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
        name, label=body.name, expires_days=body.expires_days
    )
    return NewKeyOut(key=plain, **KeyOut.of(info).model_dump())


@router.get("/keys")
async def list_keys(admin: Admin, services: ServicesDep) -> list[KeyOut]:
    return [KeyOut.of(k) for k in await services.accounts.list_keys()]


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: KeyId, admin: Admin, services: ServicesDep) -> KeyOut:
    return KeyOut.of(await services.accounts.revoke_key(key_id))


@router.put("/keys/{key_id}/quota")
async def set_key_quota(
    key_id: KeyId, body: QuotaIn, admin: Admin, services: ServicesDep
) -> KeyOut:
    """A key's own limits, binding its requests on top of its owner's (null or -1: none)."""
    limits = body.model_dump(exclude_unset=True)
    return KeyOut.of(await services.accounts.set_key_quota(key_id, **limits))


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
