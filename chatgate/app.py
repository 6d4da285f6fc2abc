"""The ASGI application: one app factory, the lifespan that owns every shared client, and the
error mapping for the routes FastAPI handles."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatgate import __version__, log_redaction, web
from chatgate.core.clock import Clock
from chatgate.core.errors import ChatgateError, InvalidRequest, NotFound, PayloadTooLarge
from chatgate.providers.admin import ProviderAdmin, install_reload_signal
from chatgate.services import Services
from chatgate.settings import Settings
from chatgate.transports import (
    chatapi_http,
    compat_ws,
    easybackend_http,
    native_accounts,
    native_admin,
    native_conversations,
    native_providers,
    native_replies,
    native_setup,
    native_signup,
    openai_conversations,
    openai_embeddings,
    openai_http,
    openai_responses,
    openapi_docs,
    websocket,
)
from chatgate.transports.hot_paths import ChatgateApp, hot_paths
from chatgate.transports.http_common import (
    INTERNAL,
    error_body,
    error_response,
    json_response,
    services_of,
)

if TYPE_CHECKING:
    import grpc

log = logging.getLogger("chatgate")

# Routes anyone may call; every other route authenticates (a test holds the app to this).
PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/docs",
        "/docs/oauth2-redirect",
        "/docs/assets",
        "/redoc",
        "/openapi.json",
        "/api/v1/auth/login",
        *native_setup.PATHS,  # the first administrator's creation, with the logged link
        *native_signup.PATHS,  # sign-up, when an administrator allows it
        "/token",
        *web.PUBLIC_PATHS,  # the web page and its assets
    }
)


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok", "version": __version__})


async def readyz(request: Request) -> Response:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        return json_response({"status": "starting"}, status=503)
    try:
        current = await services.db.is_current()
    except Exception:
        log.exception("readiness check could not reach the database")
        return json_response({"status": "database unreachable"}, status=503)
    if not current:
        return json_response(
            {"status": "database schema is not current: run chatgate db upgrade"}, status=503
        )
    behind = services.writer.health()
    if behind is not None:
        return json_response({"status": behind}, status=503)
    if services.settings.redis_url:
        from chatgate import health

        probe = getattr(request.app.state, "redis_probe", None)
        if probe is None:
            probe = request.app.state.redis_probe = health.redis_client(services.settings.redis_url)
        problem = await health.redis_problem(probe)
        if problem is not None:
            return json_response({"status": problem}, status=503)
    return json_response({"status": "ready"})


async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    return Response(services.metrics.render(), media_type="text/plain; version=0.0.4")


async def _start_grpc(services: Services) -> grpc.aio.Server | None:
    """Start gRPC only when it has a port: importing grpc costs the server about 10 MB."""
    if services.settings.grpc_port == 0:
        return None
    from chatgate.transports import grpc_server

    return await grpc_server.start(services)


_GC_DEFAULTS = gc.get_threshold()


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    web_dir: Path | None = None,
    first: bool = True,
) -> FastAPI:
    """The whole service; ``web_dir`` holds the built web page (default: the package's).
    Of several workers only the ``first`` does the start-up work done once (the database was
    upgraded before they started; the setup link is logged once)."""
    log_redaction.install()  # the servers' own log lines show no credential

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await Services.open(settings, clock=clock, migrate=None if first else False)
        app.state.services = services
        grpc = app.state.grpc = await _start_grpc(services)
        install_reload_signal(ProviderAdmin(services.models, services.accounts.audit))
        if first:
            await native_setup.announce(services)
        # What start-up made lives as long as the service: out of the collector's way. A request
        # leaves little cyclic garbage, so young collections can be rarer (5% less CPU each).
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 20, 20)
        try:
            yield
        finally:
            if grpc is not None:
                from chatgate.transports import grpc_server

                await grpc_server.stop(grpc)
            probe = getattr(app.state, "redis_probe", None)
            if probe is not None:
                await probe.aclose()
            await services.close()
            gc.unfreeze()
            gc.set_threshold(*_GC_DEFAULTS)

    app = ChatgateApp(
        title="chatgate",
        version=__version__,
        lifespan=lifespan,
        description="A self-hosted ChatGPT service with an OpenAI-compatible gateway.",
        docs_url=None,
        redoc_url=None,
        max_body_size=settings.max_request_bytes,
    )
    app.public_paths = PUBLIC_PATHS
    app.access_log = settings.access_log
    for route in openai_http.routes:
        app.router.routes.append(route)
    app.hot_paths = hot_paths(openai_http.routes)
    app.router.routes.extend(openai_responses.routes)
    app.router.routes.extend(websocket.routes)
    app.router.routes.extend(compat_ws.routes)
    app.include_router(native_providers.router)
    app.include_router(native_conversations.router)
    app.include_router(native_replies.router)
    app.include_router(openai_embeddings.router)
    app.include_router(openai_conversations.router)
    app.router.routes.extend(easybackend_http.routes)
    app.router.routes.extend(chatapi_http.routes)
    app.include_router(native_accounts.router)
    app.include_router(native_admin.router)
    app.include_router(native_setup.router)
    app.include_router(native_signup.router)
    app.router.routes.extend(
        [
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )
    openapi_docs.install(app, PUBLIC_PATHS)
    app.router.routes.extend(web.routes(web_dir))  # last: the page shadows no API route
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ChatgateError)
    async def _chatgate_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ChatgateError)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        err = InvalidRequest(f"{where or 'body'}: {first.get('msg', 'invalid value')}", param=where)
        response = json_response(error_body(err), status=422)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return error_response(NotFound(f"No route for {request.method} {request.url.path}."))
        if exc.status_code == 413:
            limit = services_of(request).settings.max_request_bytes
            return error_response(
                PayloadTooLarge(f"The request body is larger than {limit} bytes.")
            )
        err = ChatgateError(str(exc.detail))
        err.status = exc.status_code
        err.code = "http_error"
        return json_response(error_body(err), status=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        """The last resort: a bug answers in OpenAI's shape (the server logs the traceback)."""
        return error_response(INTERNAL)
