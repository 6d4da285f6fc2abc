"""``chatgate serve``: take the ports first, so that a busy one is one line naming the option
that chooses another, then hand the app to uvicorn, and say "listening" only once it is.

The HTTP socket is bound here and given to uvicorn. The gRPC port can only be bound by grpc's
server inside the app's start-up, so it is tried here first: a port that another program holds
is found before anything starts, with no traceback. Should the port be taken in between, the
start-up's failure is told in the same line, not as uvicorn's traceback.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.lifespan.on import LifespanOn

from chatgate.core.errors import PortInUse
from chatgate.settings import Settings

log = logging.getLogger("chatgate")
GRPC_PORT_OPTION = "--grpc-port (0 turns gRPC off)"
STARTUP_FAILURE = 3  # uvicorn's own exit code when the app's start-up fails


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
    """uvicorn's server, which says where chatgate listens once the sockets are serving."""

    def __init__(self, config: uvicorn.Config, settings: Settings) -> None:
        super().__init__(config)
        self.settings = settings

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started:
            return
        s = self.settings
        grpc = f", gRPC on {s.host}:{s.grpc_port}" if s.grpc_port else ", gRPC off"
        scheme = "https" if s.ssl_certfile else "http"
        log.info(
            "chatgate listening on %s://%s:%s%s (data in %s)",
            scheme,
            s.host,
            s.port,
            grpc,
            s.data_dir,
        )


def serve(settings: Settings) -> None:
    """Run until stopped; exit 1 with one line when a port is busy."""
    if settings.ssl_keyfile and not settings.ssl_certfile:
        log.error("--ssl-keyfile needs --ssl-certfile: the certificate it is the key of")
        sys.exit(1)
    try:
        if settings.grpc_port:
            check_free("gRPC", settings.host, settings.grpc_port, GRPC_PORT_OPTION)
        sock = bind("HTTP", settings.host, settings.port, "--port")
    except PortInUse as exc:
        log.error("%s", exc)
        sys.exit(1)
    run(settings, sock)


def run(settings: Settings, sock: socket.socket) -> None:
    """Serve on ``sock`` (HTTP, or HTTPS with a certificate) and the gRPC port until stopped.
    uvicorn keeps to chatgate's logging (``chatgate.logs``) and writes no access log of its
    own: chatgate's names the request id."""
    from chatgate.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,
        ssl_certfile=settings.ssl_certfile,
        ssl_keyfile=settings.ssl_keyfile,
    )
    try:
        config.load()
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        log.error("cannot use the TLS certificate or key: %s", exc)
        sys.exit(1)
    config.lifespan_class = StartupLifespan
    server = ChatgateServer(config, settings)
    with sock:
        server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)
