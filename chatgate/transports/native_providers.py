"""The administrators' API for upstreams: ``/api/v1/admin/providers`` and ``/models``.

Thin: check the caller is an administrator, hand the body to ``ProviderAdmin``, return what it
says. Keys are write-only: they go in with a provider and never come back out.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from starlette.responses import Response

from chatgate.core.accounts import Principal
from chatgate.providers.admin import ProviderAdmin
from chatgate.transports.http_common import StrictRoute, require_admin, services_of

router = APIRouter(prefix="/api/v1/admin", tags=["admin: providers"], route_class=StrictRoute)


async def _admin(request: Request) -> Principal:
    return await require_admin(request)


def _providers(request: Request, admin: Principal) -> ProviderAdmin:
    services = services_of(request)
    return ProviderAdmin(
        services.models, services.accounts.audit, admin.actor, changes=services.changes
    )


Admin = Depends(_admin)


@router.get("/providers")
async def list_providers(request: Request, admin: Principal = Admin) -> dict[str, Any]:
    """Every upstream, with its keys counted (never shown) and its resting deployments."""
    return {"object": "list", "data": _providers(request, admin).providers()}


@router.put("/providers/{name}")
async def put_provider(
    request: Request, name: str, body: dict[str, Any] = Body(...), admin: Principal = Admin
) -> dict[str, Any]:
    """Add or replace a provider; running streams finish on the old one. Leave ``api_keys`` out
    to keep the keys it has."""
    return await _providers(request, admin).put_provider(name, body)


@router.delete("/providers/{name}", status_code=204)
async def delete_provider(request: Request, name: str, admin: Principal = Admin) -> Response:
    await _providers(request, admin).remove_provider(name)
    return Response(status_code=204)


@router.post("/providers/reload")
async def reload_providers(request: Request, admin: Principal = Admin) -> dict[str, int]:
    """Re-read providers, models and routing from the server's TOML file."""
    return await _providers(request, admin).reload()


@router.get("/models")
async def list_models(request: Request, admin: Principal = Admin) -> dict[str, Any]:
    return {"object": "list", "data": _providers(request, admin).models()}


@router.put("/models/{name}")
async def put_model(
    request: Request, name: str, body: dict[str, Any] = Body(...), admin: Principal = Admin
) -> dict[str, Any]:
    return await _providers(request, admin).put_model(name, body)


@router.delete("/models/{name}", status_code=204)
async def delete_model(request: Request, name: str, admin: Principal = Admin) -> Response:
    await _providers(request, admin).remove_model(name)
    return Response(status_code=204)
