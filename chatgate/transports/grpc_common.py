"""What the gRPC services share: the caller's credential from the metadata, the one place
where a ``ChatgateError`` becomes a gRPC status (with ``google.rpc`` details: ErrorInfo carrying
the stable error code, RetryInfo when a retry after a while may succeed), and the guard every
call of chatgate's services passes through: a request that does not parse is INVALID_ARGUMENT,
and a failure nobody foresaw is logged and answered INTERNAL, never a bare crash."""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

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
    ShuttingDown,
    UpstreamError,
    UpstreamMisconfigured,
    UpstreamRejected,
    UpstreamTimeout,
)
from chatgate.services import Services

log = logging.getLogger("chatgate.grpc")
UNFORESEEN = ChatgateError("Something went wrong on our side; the error has been logged.")

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
    (ShuttingDown, grpc.StatusCode.UNAVAILABLE),
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


async def abort(context: grpc.aio.ServicerContext, exc: ChatgateError) -> NoReturn:
    """End the call with the status for ``exc``; like ``context.abort``, this raises."""
    details = rich_status(exc).SerializeToString()
    trailing = (("grpc-status-details-bin", details),)
    await context.abort(status_code(exc), exc.message, trailing_metadata=trailing)
    raise AssertionError("context.abort returned")


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


# ---- the guard around every call ------------------------------------------------------------

Handler = Any  # grpc.RpcMethodHandler, which grpc does not type


async def _decode(handler: Handler, raw: bytes, context: grpc.aio.ServicerContext) -> Any:
    try:
        return handler.request_deserializer(raw)
    except Exception:
        await abort(context, InvalidRequest("The request is not a valid message for this call."))


def _guard_unary(handler: Handler) -> Handler:
    inner: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]] = handler.unary_unary

    async def call(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        request = await _decode(handler, raw, context)
        try:
            return await inner(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("a gRPC call failed")
            await abort(context, UNFORESEEN)

    return grpc.unary_unary_rpc_method_handler(
        call, response_serializer=handler.response_serializer
    )


def _guard_stream(handler: Handler) -> Handler:
    inner: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]] = handler.unary_stream

    async def call(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        request = await _decode(handler, raw, context)
        try:
            async for reply in inner(request, context):
                yield reply
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("a gRPC call failed")
            await abort(context, UNFORESEEN)

    return grpc.unary_stream_rpc_method_handler(
        call, response_serializer=handler.response_serializer
    )


class Guard(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Parses each request of the services named in ``services`` itself, so that bytes that
    are not a message get INVALID_ARGUMENT (grpc's own answer is INTERNAL, with a traceback in
    the log), and answers INTERNAL, logged once, for anything a handler did not foresee."""

    def __init__(self, services: tuple[str, ...]) -> None:
        self.prefixes = tuple(f"/{name}/" for name in services)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(details)
        if handler is None or not details.method.startswith(self.prefixes):
            return handler
        if handler.unary_unary is not None and inspect.iscoroutinefunction(handler.unary_unary):
            return _guard_unary(handler)
        if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
            return _guard_stream(handler)
        return handler
