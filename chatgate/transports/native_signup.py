"""Sign-up over HTTP: ``/api/v1/auth/signup`` for anyone, and the administrators' side
(``/api/v1/admin/signup``, ``/api/v1/admin/invites``). Thin: one call into ``SignupService``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from chatgate.core.invites import MAX_HOURS, MAX_USES, InviteInfo
from chatgate.transports.account_schemas import MAX_ID, Incoming
from chatgate.transports.http_common import StrictRoute
from chatgate.transports.native_accounts import Admin, ServicesDep, client_address

router = APIRouter(prefix="/api/v1", route_class=StrictRoute)
PATHS = frozenset({"/api/v1/auth/signup"})

Mode = Literal["off", "approval", "invite"]


class SignupMode(BaseModel):
    mode: Mode = Field(
        description="'off': no sign-up; 'approval': anyone may sign up and waits for an "
        "administrator; 'invite': an invite code is needed."
    )


class SignupIn(Incoming):
    username: str = Field(max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    invite: str | None = Field(default=None, max_length=128, description="An invite code.")


class SignupOut(BaseModel):
    username: str
    status: Literal["active", "pending"] = Field(
        description="'pending': the account waits for an administrator's approval."
    )


class InviteIn(Incoming):
    uses: int = Field(default=1, ge=1, le=MAX_USES, description="How many accounts it makes.")
    expires_in_hours: float = Field(default=168.0, gt=0, le=MAX_HOURS)
    role: Literal["user", "admin"] = "user"
    note: str | None = Field(default=None, max_length=255)


class InviteOut(BaseModel):
    id: int
    prefix: str = Field(description="The start of the code, to tell invites apart.")
    uses: int
    used: int
    expires_at: float = Field(description="Unix time.")
    role: str
    note: str | None
    created_by: str
    created_at: float

    @classmethod
    def of(cls, info: InviteInfo) -> InviteOut:
        return cls(
            id=info.id,
            prefix=info.prefix,
            uses=info.uses,
            used=info.used,
            expires_at=info.expires_at,
            role=info.role,
            note=info.note,
            created_by=info.created_by,
            created_at=info.created_at,
        )


class NewInviteOut(InviteOut):
    code: str = Field(description="The code itself, shown this once and never stored.")
    url: str = Field(description="The page's sign-up link, relative to the server.")


InviteId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("/auth/signup", tags=["auth"])
async def signup_mode(services: ServicesDep) -> SignupMode:
    """Whether and how one may sign up (the login page shows a form unless it is off)."""
    return SignupMode(mode=await services.signup.mode())


@router.post("/auth/signup", status_code=201, tags=["auth"])
async def sign_up(body: SignupIn, request: Request, services: ServicesDep) -> SignupOut:
    """Make an account: 403 ``signup_closed`` when sign-up is off; with an invite the account
    is active, without one (in approval mode) it waits as ``pending``."""
    info = await services.signup.sign_up(
        body.username, body.password, body.invite, client_address(request)
    )
    return SignupOut(username=info.name, status="pending" if info.pending else "active")


@router.get("/admin/signup", tags=["admin"])
async def admin_signup_mode(admin: Admin, services: ServicesDep) -> SignupMode:
    return SignupMode(mode=await services.signup.mode())


@router.put("/admin/signup", tags=["admin"])
async def set_signup_mode(body: SignupMode, admin: Admin, services: ServicesDep) -> SignupMode:
    """Change the sign-up mode for every server at once (kept in the database; audited)."""
    return SignupMode(mode=await services.signup.set_mode(body.mode, by=admin.actor))


@router.post("/admin/invites", status_code=201, tags=["admin"])
async def create_invite(body: InviteIn, admin: Admin, services: ServicesDep) -> NewInviteOut:
    """Make an invite; its code is in this answer once and never again."""
    code, info = await services.signup.invites.create(
        uses=body.uses,
        expires_in_hours=body.expires_in_hours,
        role=body.role,
        note=body.note,
        by=admin.actor,
    )
    return NewInviteOut(code=code, url=f"/login?invite={code}", **InviteOut.of(info).model_dump())


@router.get("/admin/invites", tags=["admin"])
async def list_invites(admin: Admin, services: ServicesDep) -> list[InviteOut]:
    """Every invite, used up and expired ones too (their codes are never shown again)."""
    return [InviteOut.of(i) for i in await services.signup.invites.list()]


@router.delete("/admin/invites/{invite_id}", status_code=204, tags=["admin"])
async def delete_invite(invite_id: InviteId, admin: Admin, services: ServicesDep) -> None:
    """Withdraw an invite; accounts already made with it stay."""
    await services.signup.invites.delete(invite_id, by=admin.actor)
