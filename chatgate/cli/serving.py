"""``chatgate serve``: take the ports first, so that a busy one is one line naming the option
that chooses another, then hand the app to uvicorn, and say "listening" only once it is.

The HTTP socket is bound here and given to uvicorn (or to every worker, see ``workers``). The
gRPC port can only be bound by grpc's server inside the app's start-up, so it is tried here
first: a port that another program holds is found before anything starts, with no traceback.
Should the port be taken in between, the start-up's failure is told in the same line, not as
uvicorn's traceback.

Told to stop (SIGTERM, Ctrl-C), the server drains: it takes no new connection or gRPC call,
lets running replies go on for ``shutdown_grace_seconds``, ends those still running with an
error event (``chatgate.core.draining``), then writes what is pending and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.lifespan.on import LifespanOn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chatgate.core.errors import PortInUse
from chatgate.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from chatgate.core.draining import Drain

log = logging.getLogger("chatgate")
GRPC_PORT_OPTION = "--grpc-port (0 turns gRPC off)"
STARTUP_FAILURE = 3  # uvicorn's own exit code when the app's start-up fails
AFTER_GRACE = 5.0
"""Seconds given, once the grace period is over, to send the error events and close."""
HTTP_PROTOCOLS = (HttpToolsProtocol, H11Protocol)


def bind(what: str, host: str, port: int, option: str) -> socket.socket:
    """A listening socket on ``host:port``, or ``PortInUse`` saying how to choose another."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise PortInUse(what, host, port, option, exc.strerror or str(exc)) from None


def check_free(what: str, host: str, port: int, option: str) -> None:
    bind(what, host, port, option).close()


def port_in_use(exc: BaseException | None) -> PortInUse | None:
    """The ``PortInUse`` behind ``exc``, however it was wrapped on its way out of start-up."""
    while exc is not None:
        if isinstance(exc, PortInUse):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            return next(filter(None, map(port_in_use, exc.exceptions)), None)
        exc = exc.__cause__ or exc.__context__
    return None


class StartupLifespan(LifespanOn):
    """uvicorn's lifespan, which tells a port that start-up could not have in one line."""

    async def send(self, message: Any) -> None:
        if message["type"] == "lifespan.startup.failed":
            busy = port_in_use(sys.exc_info()[1])  # sent while the failure is being handled
            if busy is not None:
                message = {"type": message["type"], "message": str(busy)}
        await super().send(message)


class ChatgateServer(uvicorn.Server):
    """uvicorn's server, which says where chatgate listens once the sockets are serving, and
    drains when told to stop. A worker of several reports itself ready to its supervisor
    (``ready``) instead, which says "listening" once for all."""

    def __init__(
        self,
        config: uvicorn.Config,
        settings: Settings,
        app: FastAPI,
        ready: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.settings = settings
        self.app = app
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started:
            return
        if self.ready is not None:
            self.ready()
            return
        log.info("%s", listening(self.settings))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown, with a grace period for running replies on every transport.

        uvicorn would close a WebSocket at once (code 1012) and cancel a streamed answer after
        its timeout with no word to the client. Here HTTP connections are told to close once
        answered, WebSockets stay open while their replies run, gRPC takes no new call; at the
        end of the grace period the replies still running end with an error event that each
        transport sends in its shape, and only then are the WebSockets closed."""
        services = getattr(self.app.state, "services", None)
        if services is None:  # start-up did not get that far
            await super().shutdown(sockets)
            return
        grace = self.settings.shutdown_grace_seconds
        log.info("stopping: no new requests; running replies have %ss to finish", grace)
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        grpc_stopped = None
        grpc = getattr(self.app.state, "grpc", None)
        if grpc is not None:
            from chatgate.transports import grpc_server

            grpc_stopped = asyncio.create_task(grpc_server.stop(grpc, grace + AFTER_GRACE))
        services.drain.begin(grace)
        websockets = []
        for connection in list(self.server_state.connections):
            if isinstance(connection, HTTP_PROTOCOLS):
                connection.shutdown()
            else:
                websockets.append(connection)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._replies_ended(services.drain), grace + AFTER_GRACE)
        for connection in websockets:
            if connection in self.server_state.connections:
                try:
                    connection.shutdown()  # close code 1012, "service restart"
                except Exception as exc:  # the client was closing it meanwhile
                    log.debug("a WebSocket was already closing: %r", exc)
        try:
            await asyncio.wait_for(self._wait_tasks_to_complete(), AFTER_GRACE)
        except TimeoutError:
            log.error("cancelling %d requests that did not end", len(self.server_state.tasks))
            for task in self.server_state.tasks:
                task.cancel(msg="the server is stopping")
        if grpc_stopped is not None:
            await grpc_stopped
        if not self.force_exit:
            await self.lifespan.shutdown()

    async def _replies_ended(self, drain: Drain) -> None:
        """Return once no reply runs and every HTTP answer has been sent."""
        while not self.force_exit:
            http = any(isinstance(c, HTTP_PROTOCOLS) for c in self.server_state.connections)
            if not http and drain.running == 0:
                return
            await asyncio.sleep(0.1)


def listening(settings: Settings, workers: int = 1) -> str:
    s = settings
    grpc = f", gRPC on {s.host}:{s.grpc_port}" if s.grpc_port else ", gRPC off"
    scheme = "https" if s.ssl_certfile else "http"
    many = f", {workers} workers" if workers > 1 else ""
    return f"chatgate listening on {scheme}://{s.host}:{s.port}{grpc}{many} (data in {s.data_dir})"


def serve(settings: Settings) -> None:
    """Run until stopped; exit 1 with one line when a port is busy."""
    if settings.ssl_keyfile and not settings.ssl_certfile:
        log.error("--ssl-keyfile needs --ssl-certfile: the certificate it is the key of")
        sys.exit(1)
    if settings.workers > 1:
        from chatgate.cli.workers import refusal

        refused = refusal(settings)
        if refused is not None:
            log.error("%s", refused)
            sys.exit(1)
    try:
        if settings.grpc_port:
            check_free("gRPC", settings.host, settings.grpc_port, GRPC_PORT_OPTION)
        sock = bind("HTTP", settings.host, settings.port, "--port")
    except PortInUse as exc:
        log.error("%s", exc)
        sys.exit(1)
    if settings.workers > 1:
        from chatgate.cli.workers import supervise

        sys.exit(supervise(settings, sock))
    run(settings, sock)


def run(
    settings: Settings,
    sock: socket.socket,
    *,
    first: bool = True,
    ready: Callable[[], None] | None = None,
) -> None:
    """Serve on ``sock`` (HTTP, or HTTPS with a certificate) and the gRPC port until stopped.
    uvicorn keeps to chatgate's logging (``chatgate.logs``) and writes no access log of its
    own: chatgate's names the request id. A worker of several passes ``first`` (whether it
    does the work done once) and ``ready`` (told once it serves)."""
    from chatgate.app import create_app

    app = create_app(settings, first=first)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        log_level=settings.log_level,
        ssl_certfile=settings.ssl_certfile,
        ssl_keyfile=settings.ssl_keyfile,
    )
    try:
        config.load()
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        log.error("cannot use the TLS certificate or key: %s", exc)
        sys.exit(1)
    config.lifespan_class = StartupLifespan
    server = ChatgateServer(config, settings, app, ready)
    with sock:
        server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)
