"""The first run over HTTP: ``GET /api/v1/setup`` says whether an administrator is still
missing; ``POST /api/v1/setup`` creates the first one with the link's token, and logs them in.

The server logs the link at start (``announce``); the page at ``/setup`` reads its token.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from chatgate.core.first_run import FirstRun
from chatgate.services import Services
from chatgate.transports.account_schemas import Incoming, LoginOut
from chatgate.transports.http_common import StrictRoute, services_of
from chatgate.transports.native_accounts import client_address, login_out, set_login_cookie

log = logging.getLogger("chatgate")
router = APIRouter(prefix="/api/v1", tags=["auth"], route_class=StrictRoute)
PATHS = frozenset({"/api/v1/setup"})


class SetupIn(Incoming):
    token: str = Field(max_length=128, description="The token of the link in the server's log.")
    username: str = Field(max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    cookie: bool = Field(default=False, description="Also set the HttpOnly login cookie.")


class SetupState(BaseModel):
    needed: bool = Field(description="True while no administrator exists.")


def first_run(services: Services) -> FirstRun:
    return FirstRun(services.db, services.accounts, services.settings.secret())


@router.get("/setup")
async def setup_state(request: Request) -> SetupState:
    return SetupState(needed=await first_run(services_of(request)).needed())


@router.post("/setup", status_code=201)
async def setup(body: SetupIn, request: Request, response: Response) -> LoginOut:
    """Create the first administrator (once, and only while there is none), logged in."""
    services = services_of(request)
    await first_run(services).create_admin(body.token, body.username, body.password)
    session = await services.logins.login(body.username, body.password, client_address(request))
    if body.cookie:
        set_login_cookie(request, response, session)
    return login_out(session)


async def announce(services: Services) -> None:
    """Log the one-time setup link when the database has no administrator yet."""
    token = await first_run(services).token()
    if token is None:
        return
    settings = services.settings
    host = "localhost" if settings.host in ("0.0.0.0", "::", "") else settings.host
    if ":" in host:
        host = f"[{host}]"
    log.warning(
        "no administrator yet: create the first one at http://%s:%s/setup?token=%s "
        "(the link works once; `chatgate users create NAME --admin` works too)",
        host,
        settings.port,
        token,
    )
