"""What the gRPC services share: the caller's credential from the metadata, and the one place
where a ``ChatgateError`` becomes a gRPC status (with ``google.rpc`` details: ErrorInfo carrying
the stable error code, RetryInfo when a retry after a while may succeed)."""

from __future__ import annotations

import math
from typing import NoReturn

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
    UpstreamError,
    UpstreamMisconfigured,
    UpstreamRejected,
    UpstreamTimeout,
)
from chatgate.services import Services

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
