"""The native accounts API for everyone: logging in and out, one's own keys and usage.

Thin: each route checks who calls, makes one call into the core and shapes the answer.
Errors are ``ChatgateError``s, which the app turns into responses in one place.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.requests import HTTPConnection

from chatgate.core.accounts import Limits, Principal
from chatgate.core.errors import InvalidRequest
from chatgate.core.logins import Session
from chatgate.core.usage import GROUPS
from chatgate.services import Services
from chatgate.transports.account_schemas import (
    KeyId,
    KeyIn,
    KeyOut,
    LoginIn,
    LoginOut,
    LogoutIn,
    MeOut,
    ModelOut,
    ModelsOut,
    NewKeyOut,
    PasswordIn,
    Quota,
    TodayOut,
    UsageOut,
    UsageRowOut,
    UserOut,
)
from chatgate.transports.http_common import (
    SESSION_COOKIE,
    StrictRoute,
    authenticate,
    require_admin,
    services_of,
)

router = APIRouter(prefix="/api/v1", route_class=StrictRoute)

ServicesDep = Annotated[Services, Depends(services_of)]
Caller = Annotated[Principal, Depends(authenticate)]
Admin = Annotated[Principal, Depends(require_admin)]


def client_address(conn: HTTPConnection) -> str | None:
    return conn.client.host if conn.client else None


def set_login_cookie(request: Request, response: Response, session: Session) -> None:
    """HttpOnly and SameSite=Strict: page scripts cannot read it, other sites cannot use it."""
    settings = services_of(request).settings
    secure = settings.cookie_secure
    if secure is None:
        secure = request.url.scheme == "https"
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=max(0, session.claims.expires_at - int(services_of(request).clock.now())),
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )


def login_out(session: Session) -> LoginOut:
    return LoginOut(
        token=session.token,
        expires_at=session.claims.expires_at,
        user=UserOut.of(session.user),
        password_change_required=session.user.password_change_required,
    )


# ---- logins ---------------------------------------------------------------------------------


@router.post("/auth/login", tags=["auth"])
async def login(
    body: LoginIn, request: Request, response: Response, services: ServicesDep
) -> LoginOut:
    """Exchange a user name and password for a login token (a JWT), optionally as a cookie.

    With a one-time password the answer says ``password_change_required``, and its token is
    refused everywhere (403 ``password_change_required``) but to change the password; no
    cookie is set for it, so a page never holds such a login. Sending ``new_password`` as well
    changes the password at once and answers with an ordinary login (as ``POST
    /api/v1/auth/password`` would: the same checks, every other login of the user ends)."""
    address = client_address(request)
    session = await services.logins.login(body.username, body.password, address)
    if body.new_password is not None:
        user = await services.accounts.get_user(session.user.name)
        session = await services.logins.change_password(
            services.accounts.principal_for(user), body.password, body.new_password, address
        )
    if body.cookie and not session.user.password_change_required:
        set_login_cookie(request, response, session)
    return login_out(session)


@router.post("/auth/logout", status_code=204, tags=["auth"])
async def logout(caller: Caller, services: ServicesDep, body: LogoutIn | None = None) -> Response:
    """End this login (its token stops working), or every login of the user."""
    await services.logins.logout(caller, everywhere=bool(body and body.everywhere))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/auth/me", tags=["auth"])
async def me(caller: Caller) -> MeOut:
    """Who the credential belongs to and which limits apply."""
    return MeOut(
        user_id=caller.user_id,
        username=caller.username,
        role=caller.role,
        via="key" if caller.key_id is not None else "login",
        key_id=caller.key_id,
        limits=_quota(caller.limits),
        key_limits=_quota(caller.key_limits),
    )


def _quota(limits: Limits) -> Quota:
    return Quota(
        daily_requests=limits.daily_requests,
        daily_tokens=limits.daily_tokens,
        rpm=limits.rpm,
        max_streams=limits.max_streams,
    )


@router.post("/auth/password", tags=["auth"])
async def change_password(
    body: PasswordIn, request: Request, response: Response, caller: Caller, services: ServicesDep
) -> LoginOut:
    """Change one's password; every login token ends, and a fresh one is returned. The new
    password is the user's own: a one-time password's mark is cleared."""
    session = await services.logins.change_password(
        caller, body.current_password, body.new_password, client_address(request)
    )
    if request.cookies.get(SESSION_COOKIE):
        set_login_cookie(request, response, session)
    return login_out(session)


# ---- own keys ---------------------------------------------------------------------------------


@router.get("/keys", tags=["keys"])
async def list_keys(caller: Caller, services: ServicesDep) -> list[KeyOut]:
    return [KeyOut.of(k) for k in await services.accounts.list_keys(caller.user_id)]


@router.post("/keys", status_code=201, tags=["keys"])
async def create_key(body: KeyIn, caller: Caller, services: ServicesDep) -> NewKeyOut:
    """Make a key; it is in this answer once and never again."""
    plain, info = await services.accounts.create_key(
        caller.username, label=body.name, expires_days=body.expires_days, by=caller.actor
    )
    return NewKeyOut(key=plain, **KeyOut.of(info).model_dump())


@router.delete("/keys/{key_id}", tags=["keys"])
async def revoke_key(key_id: KeyId, caller: Caller, services: ServicesDep) -> KeyOut:
    """Revoke one of one's own keys (another user's key is simply not found)."""
    revoked = await services.accounts.revoke_key(key_id, user_id=caller.user_id, by=caller.actor)
    return KeyOut.of(revoked)


# ---- usage ------------------------------------------------------------------------------------


def parse_groups(raw: str, default: tuple[str, ...]) -> list[str]:
    groups = [g.strip() for g in raw.split(",") if g.strip()] if raw else list(default)
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise InvalidRequest(
            f"group_by takes {', '.join(GROUPS)}; not {', '.join(sorted(unknown))}",
            param="group_by",
        )
    return groups


def day_range(services: Services, start: date | None, end: date | None) -> tuple[str, str]:
    """Defaults to the last 30 days, today included."""
    first, last = services.usage_queries.days_back(30)
    first = start.isoformat() if start else first
    last = end.isoformat() if end else last
    if first > last:
        raise InvalidRequest("'from' is after 'to'", param="from")
    return first, last


From = Annotated[date | None, Query(alias="from", description="First day, YYYY-MM-DD.")]
To = Annotated[date | None, Query(alias="to", description="Last day, YYYY-MM-DD.")]
GroupBy = Annotated[str, Query(description="Comma-separated: day, user, key, model.")]


@router.get("/usage", tags=["usage"])
async def my_usage(
    caller: Caller,
    services: ServicesDep,
    start: From = None,
    end: To = None,
    group_by: GroupBy = "",
) -> UsageOut:
    """One's own requests, tokens, errors and cost per day, model and key."""
    first, last = day_range(services, start, end)
    groups = parse_groups(group_by, ("day", "model", "key"))
    rows = await services.usage_queries.report(
        start=first, end=last, user_id=caller.user_id, group_by=groups
    )
    return UsageOut(start=first, end=last, group_by=groups, rows=[UsageRowOut.of(r) for r in rows])


@router.get("/usage/today", tags=["usage"])
async def my_day(caller: Caller, services: ServicesDep) -> TodayOut:
    """Where the caller stands today: used and remaining requests and tokens against the limits
    that apply, the last minute's requests, those running now, and when the day turns."""
    return TodayOut.of_standing(await services.quotas.standing(caller))


# ---- models -----------------------------------------------------------------------------------


@router.get("/models", tags=["models"])
async def my_models(caller: Caller, services: ServicesDep) -> ModelsOut:
    """The models the caller may use, with what a picker shows of them."""
    models = services.models
    names = models.names(caller)
    cards = []
    for name in names:
        route = models.resolve(name)
        cards.append(
            ModelOut(
                id=name,
                model=route.name,
                kind=route.config.kind,
                context_window=services.conversations.window(route),
                owned_by=route.owned_by,
            )
        )
    return ModelsOut(default=names[0] if names else None, data=cards)


__all__ = [
    "Admin",
    "Caller",
    "From",
    "GroupBy",
    "ServicesDep",
    "To",
    "day_range",
    "parse_groups",
    "router",
]
