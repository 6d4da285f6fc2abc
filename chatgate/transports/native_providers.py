"""The administrators' API for upstreams: ``/api/v1/admin/providers`` and ``/models``.

Thin: check the caller is an administrator, hand the body to ``ProviderAdmin``, return what it
says. Keys are write-only: they go in with a provider and never come back out.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from chatgate.core.accounts import Principal
from chatgate.core.upstream_health import UpstreamHealth
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


class TrafficOut(BaseModel):
    """From the request log, every server's: the requests this provider served in the window."""

    requests: int
    errors: int = Field(description="Requests that ended in an error on this provider.")
    latency_ms: float | None = Field(description="Mean, of the requests answered in full.")
    first_token_ms: float | None = Field(description="Mean, of the requests answered in full.")
    last_error_at: float | None
    last_error_code: str | None


class LastFailureOut(BaseModel):
    at: float
    code: str
    message: str = Field(description="Cleaned of credentials and of the provider's keys.")


class FailuresOut(BaseModel):
    """This server's failed tries (retries and fallbacks included) in the window."""

    count: int
    last: LastFailureOut | None


class DeploymentHealthOut(BaseModel):
    model: str = Field(description="The model's name at chatgate.")
    upstream_model: str
    state: str = Field(description="This server's breaker: closed, open, half-open, resting.")
    resting: bool = Field(description="True while no request goes there (open or resting).")
    retry_in: float | None = Field(description="Seconds until it is tried again.")
    resting_until: float | None = Field(description="Unix time until it rests.")
    traffic: TrafficOut
    failures: FailuresOut


class ProviderHealthOut(BaseModel):
    name: str
    kind: str
    base_url: str | None
    models_found: list[str] | None = Field(description="Its last model list; null: never read.")
    models_error: str | None = Field(description="Why its model list could not be read lately.")
    traffic: TrafficOut
    failures: FailuresOut
    deployments: list[DeploymentHealthOut]


class ModelCardOut(BaseModel):
    name: str
    aliases: list[str]
    deployments: list[dict[str, str]]
    kind: str
    discovered: bool = Field(description="Found in an upstream's list rather than configured.")


class HealthOut(BaseModel):
    window_seconds: float
    providers: list[ProviderHealthOut]
    models: list[ModelCardOut]


@router.get("/providers/health")
async def providers_health(request: Request, admin: Principal = Admin) -> HealthOut:
    """Each provider and deployment over the last hour: requests, errors and mean latency from
    the request log; this server's breakers and failed tries, with the last failure's message;
    the models each upstream listed; and every model with its aliases."""
    services = services_of(request)
    report = await UpstreamHealth(
        services.db, services.writer, services.models, services.clock.now
    ).report()
    return HealthOut.model_validate(asdict(report))
