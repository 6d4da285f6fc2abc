"""gRPC, served by grpc.aio in the same process and event loop as HTTP.

Two services: the older programs' ``chat.Chat/Ask`` exactly as its clients know it, and
chatgate's own ``chatgate.v1.Chatgate`` with typed events; plus the standard health and
reflection services. Credentials come in the metadata (``authorization: Bearer KEY``).
A client that cancels its call cancels the handler's task, which closes the upstream call.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chatgate.core.accounts import Principal
from chatgate.core.errors import (
    AuthenticationFailed,
    Cancelled,
    ChatgateError,
    Conflict,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    PermissionDenied,
    UpstreamError,
    UpstreamMisconfigured,
    UpstreamRejected,
    UpstreamTimeout,
)
from chatgate.core.events import ChatEvent, ChatRequest, Delta, Done, ErrorEvent, Message
from chatgate.services import Services
from chatgate.transports import compat
from chatgate.transports.protos import (
    chat_pb2,
    chat_pb2_grpc,
    chatgate_v1_pb2,
    chatgate_v1_pb2_grpc,
)

log = logging.getLogger("chatgate.grpc")
pb = chatgate_v1_pb2

# ---- the one place errors become gRPC statuses ----------------------------------------------

_CODES: list[tuple[type[ChatgateError], grpc.StatusCode]] = [
    (AuthenticationFailed, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (LimitExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (Conflict, grpc.StatusCode.ALREADY_EXISTS),
    (UpstreamTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (UpstreamMisconfigured, grpc.StatusCode.INTERNAL),
    (UpstreamError, grpc.StatusCode.UNAVAILABLE),
    (Cancelled, grpc.StatusCode.CANCELLED),
]
_BY_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def status_code(exc: ChatgateError) -> grpc.StatusCode:
    if isinstance(exc, UpstreamRejected):
        return _BY_STATUS.get(exc.status, grpc.StatusCode.FAILED_PRECONDITION)
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def rich_status(exc: ChatgateError) -> status_pb2.Status:
    """The google.rpc.Status sent in ``grpc-status-details-bin``: the stable error code as
    ErrorInfo, and RetryInfo when the caller may retry after a while."""
    code = status_code(exc)
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=exc.code, domain="chatgate"))
    details = [info]
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        retry = any_pb2.Any()
        delay = duration_pb2.Duration(seconds=max(1, math.ceil(retry_after)))
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        details.append(retry)
    return status_pb2.Status(
        code=getattr(code_pb2, code.name), message=exc.message, details=details
    )


async def abort(context: grpc.aio.ServicerContext, exc: ChatgateError) -> None:
    """End the call with the status for ``exc`` (this raises, as ``context.abort`` does)."""
    details = rich_status(exc).SerializeToString()
    trailing = (("grpc-status-details-bin", details),)
    await context.abort(status_code(exc), exc.message, trailing_metadata=trailing)


def error_event(exc: ChatgateError) -> chatgate_v1_pb2.ChatEvent:
    retry_after = getattr(exc, "retry_after", None)
    return pb.ChatEvent(
        error=pb.Error(
            code=exc.code,
            message=exc.message,
            param=exc.param or "",
            retryable=exc.retryable,
            retry_after=float(retry_after or 0.0),
        )
    )


# ---- credentials ----------------------------------------------------------------------------


def bearer(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


async def authenticate(services: Services, context: grpc.aio.ServicerContext) -> Principal:
    token = bearer(context)
    if token is None:
        raise AuthenticationFailed(
            "You didn't provide an API key: send the metadata 'authorization: Bearer KEY'."
        )
    return await services.accounts.authenticate(token)


# ---- chat.Chat/Ask --------------------------------------------------------------------------


class AskService(chat_pb2_grpc.ChatServicer):  # type: ignore[misc]
    """The older programs' service: text pieces, then ``<|end|>…`` or ``<|err|>…``."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def Ask(
        self, request: chat_pb2.askrequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[chat_pb2.askresponse]:
        services = self.services
        error: ChatgateError | None = None
        try:
            principal = await compat.compat_principal(services, bearer(context))
            ask = compat.ask_request(
                compat.compat_model(services),
                request.prompt,
                request.conversation_id,
                request.parent_id,
            )
            async with aclosing(services.chat.stream(principal, ask)) as events:
                async for event in events:
                    if isinstance(event, Delta):
                        if event.text:
                            yield chat_pb2.askresponse(response=event.text)
                    elif isinstance(event, Done):
                        yield chat_pb2.askresponse(response=compat.end_line(event))
                    else:
                        error = event.error
        except ChatgateError as exc:
            error = exc
        if error is not None:
            yield chat_pb2.askresponse(response=compat.err_line(error))
            await abort(context, error)


# ---- chatgate.v1.Chatgate -------------------------------------------------------------------


def parse_chat(request: chatgate_v1_pb2.ChatRequest) -> ChatRequest:
    if not request.model:
        raise InvalidRequest("'model' is required.", param="model")
    messages: list[Message] = []
    for i, message in enumerate(request.messages):
        if message.role not in ("system", "developer", "user", "assistant"):
            raise InvalidRequest(f"messages[{i}].role is not valid.", param=f"messages[{i}].role")
        item: Message = {"role": message.role, "content": message.content}
        if message.name:
            item["name"] = message.name
        messages.append(item)
    if request.prompt:
        messages.append({"role": "user", "content": request.prompt})
    if not messages:
        raise InvalidRequest("Send 'messages' or a 'prompt'.", param="messages")
    params: dict[str, Any] = {}
    for name in (
        "temperature",
        "top_p",
        "max_tokens",
        "presence_penalty",
        "frequency_penalty",
        "seed",
    ):
        if request.HasField(name):
            params[name] = getattr(request, name)
    if "max_tokens" in params and params["max_tokens"] < 1:
        raise InvalidRequest("'max_tokens' must be a positive integer.", param="max_tokens")
    if request.stop:
        params["stop"] = list(request.stop)
    return ChatRequest(
        model=request.model,
        messages=messages,
        params=params,
        conversation_id=request.conversation_id or None,
        parent_id=request.parent_id or None,
    )


def render(event: ChatEvent) -> chatgate_v1_pb2.ChatEvent | None:
    if isinstance(event, Delta):
        if not event.text and not event.tool_calls:
            return None
        calls = [
            pb.ToolCall(
                index=int(c.get("index", 0)),
                id=c.get("id") or "",
                type=c.get("type") or "",
                name=(c.get("function") or {}).get("name") or "",
                arguments=(c.get("function") or {}).get("arguments") or "",
            )
            for c in event.tool_calls or ()
        ]
        return pb.ChatEvent(delta=pb.Delta(text=event.text, tool_calls=calls))
    if isinstance(event, Done):
        usage = event.usage
        return pb.ChatEvent(
            done=pb.Done(
                conversation_id=event.conversation_id or "",
                message_id=event.message_id or "",
                parent_id=event.parent_id or "",
                finish_reason=event.finish_reason,
                model=event.model,
                usage=pb.Usage(
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    total_tokens=usage.total_tokens,
                    estimated=usage.estimated,
                ),
            )
        )
    return error_event(event.error)


class NativeService(chatgate_v1_pb2_grpc.ChatgateServicer):  # type: ignore[misc]
    def __init__(self, services: Services) -> None:
        self.services = services

    async def Chat(
        self, request: chatgate_v1_pb2.ChatRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[chatgate_v1_pb2.ChatEvent]:
        services = self.services
        error: ChatgateError | None = None
        try:
            principal = await authenticate(services, context)
            events = services.chat.stream(principal, parse_chat(request))
            async with aclosing(events):
                async for event in events:
                    if isinstance(event, ErrorEvent):
                        error = event.error
                    out = render(event)
                    if out is not None:
                        yield out
        except ChatgateError as exc:
            error = exc
        if error is not None:
            await abort(context, error)

    async def ListModels(
        self, request: chatgate_v1_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> chatgate_v1_pb2.ListModelsResponse:
        try:
            await authenticate(self.services, context)
        except ChatgateError as exc:
            await abort(context, exc)
        models = [
            pb.Model(id=route.name, owned_by=route.owned_by, created=route.created)
            for route in self.services.models.routes()
        ]
        return pb.ListModelsResponse(models=models)


# ---- the server -----------------------------------------------------------------------------

SERVICE_NAMES = (
    chat_pb2.DESCRIPTOR.services_by_name["Chat"].full_name,
    pb.DESCRIPTOR.services_by_name["Chatgate"].full_name,
)


async def start(services: Services) -> grpc.aio.Server | None:
    """Listen on ``grpc_port`` (0: no gRPC); on the running event loop, like HTTP."""
    settings = services.settings
    if settings.grpc_port == 0:
        return None
    limit = settings.max_request_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.so_reuseport", 0),
        ]
    )
    chat_pb2_grpc.add_ChatServicer_to_server(AskService(services), server)  # type: ignore[no-untyped-call]
    add_native = chatgate_v1_pb2_grpc.add_ChatgateServicer_to_server
    add_native(NativeService(services), server)  # type: ignore[no-untyped-call]
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    names = (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    address = f"{settings.host}:{settings.grpc_port}"
    server.add_insecure_port(address)
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC listening on %s", address)
    return server


async def stop(server: grpc.aio.Server | None, grace: float = 5.0) -> None:
    """Stop taking calls, give running streams ``grace`` seconds, then end them."""
    if server is not None:
        await server.stop(grace)
