"""gRPC, served by grpc.aio in the same process and event loop as HTTP.

Two services: the older programs' ``chat.Chat/Ask`` exactly as its clients know it, and
chatgate's own ``chatgate.v1.Chatgate`` with typed events; plus the standard health and
reflection services. Credentials come in the metadata (``authorization: Bearer KEY``).
A client that cancels its call cancels the handler's task, which closes the upstream call.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chatgate.core.errors import PortInUse
from chatgate.services import Services
from chatgate.transports import compat
from chatgate.transports.grpc_common import Guard, bearer
from chatgate.transports.grpc_native import NativeService
from chatgate.transports.protos import (
    chat_pb2,
    chat_pb2_grpc,
    chatgate_v1_pb2,
    chatgate_v1_pb2_grpc,
)

log = logging.getLogger("chatgate.grpc")


# ---- chat.Chat/Ask --------------------------------------------------------------------------


class AskService(chat_pb2_grpc.ChatServicer):  # type: ignore[misc]
    """The older programs' service: text pieces, then ``<|end|>…`` or ``<|err|>…``."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def Ask(
        self, request: chat_pb2.askrequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[chat_pb2.askresponse]:
        """The ask protocol's lines; the call ends with status OK after ``<|err|>`` too, as
        the original server's did (its client asks again, without its parent, otherwise)."""
        lines = compat.ask_call(
            self.services,
            bearer(context),
            request.prompt,
            request.conversation_id,
            request.parent_id,
        )
        async with aclosing(lines):
            async for line in lines:
                yield chat_pb2.askresponse(response=line)


# ---- the server -----------------------------------------------------------------------------

SERVICE_NAMES = (
    chat_pb2.DESCRIPTOR.services_by_name["Chat"].full_name,
    chatgate_v1_pb2.DESCRIPTOR.services_by_name["Chatgate"].full_name,
)


async def start(services: Services) -> grpc.aio.Server | None:
    """Listen on ``grpc_port`` (0: no gRPC); on the running event loop, like HTTP."""
    settings = services.settings
    if settings.grpc_port == 0:
        return None
    limit = settings.max_request_bytes
    server = grpc.aio.server(
        interceptors=[Guard(SERVICE_NAMES)],
        options=[
            ("grpc.max_receive_message_length", limit),
            # Several workers share the port, and the kernel spreads the connections.
            ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        ],
    )
    chat_pb2_grpc.add_ChatServicer_to_server(AskService(services), server)  # type: ignore[no-untyped-call]
    add_native = chatgate_v1_pb2_grpc.add_ChatgateServicer_to_server
    add_native(NativeService(services), server)  # type: ignore[no-untyped-call]
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    names = (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    address = f"{settings.host}:{settings.grpc_port}"
    try:
        server.add_insecure_port(address)
    except RuntimeError:  # grpc says only "Failed to bind to address"
        option = "--grpc-port or grpc_port (0 turns gRPC off)"
        raise PortInUse("gRPC", settings.host, settings.grpc_port, option, "in use") from None
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC listening on %s", address)
    return server


async def stop(server: grpc.aio.Server | None, grace: float = 5.0) -> None:
    """Stop taking calls, give running streams ``grace`` seconds, then end them."""
    if server is not None:
        await server.stop(grace)
