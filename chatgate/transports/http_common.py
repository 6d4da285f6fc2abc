"""What every HTTP route shares: reading the caller's credential and body, and the one place
where a ``ChatgateError`` becomes an HTTP response (OpenAI's error shape and headers).

A caller proves who they are with ``Authorization: Bearer`` (an API key or a login JWT) or, for
the web page, with the HttpOnly login cookie set by ``POST /api/v1/auth/login``.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from chatgate.core.accounts import Principal
from chatgate.core.errors import (
    AuthenticationFailed,
    ChatgateError,
    InvalidRequest,
    LimitExceeded,
    PayloadTooLarge,
    PermissionDenied,
    QuotaExhausted,
    RateFacts,
)
from chatgate.services import Services
from chatgate.transports.asgi import Head, JsonReply

SESSION_COOKIE = "chatgate_session"

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
}


def services_of(conn: HTTPConnection) -> Services:
    services: Services = conn.app.state.services
    return services


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header."""
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def bearer_token(conn: HTTPConnection) -> str | None:
    return bearer(conn.headers.get("authorization"))


def credential_of(conn: HTTPConnection) -> str | None:
    """The Bearer credential, else the login cookie."""
    return bearer_token(conn) or conn.cookies.get(SESSION_COOKIE) or None


def head_credential(head: Head) -> str | None:
    """``credential_of`` for a raw ASGI route."""
    return bearer(head.authorization) or head.cookies().get(SESSION_COOKIE) or None


async def authenticate(conn: HTTPConnection) -> Principal:
    return await authenticate_credential(services_of(conn), credential_of(conn))


async def authenticate_credential(services: Services, token: str | None) -> Principal:
    if token is None:
        raise AuthenticationFailed(
            "You didn't provide an API key. Provide it in the Authorization header "
            "(Authorization: Bearer YOUR_KEY)."
        )
    return await services.accounts.authenticate(token)


async def require_admin(conn: HTTPConnection) -> Principal:
    principal = await authenticate(conn)
    if not principal.is_admin:
        raise PermissionDenied("This needs an administrator.")
    return principal


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    raw = await request.body()
    if len(raw) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    return parse_object(raw)


def parse_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. Send a JSON object."
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return data


def error_body(exc: ChatgateError) -> dict[str, Any]:
    if isinstance(exc, QuotaExhausted):
        kind = "insufficient_quota"
    elif isinstance(exc, LimitExceeded):
        kind = "requests"
    else:
        kind = _TYPES.get(
            exc.status, "server_error" if exc.status >= 500 else "invalid_request_error"
        )
    return {"error": {"message": exc.message, "type": kind, "param": exc.param, "code": exc.code}}


def duration(seconds: float) -> str:
    """A reset time as OpenAI writes it: ``3h12m0s``, ``1m30s``, ``6s``."""
    total = max(0, math.ceil(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def rate_headers(facts: RateFacts | None) -> dict[str, str]:
    """``x-ratelimit-*`` headers for where a caller stands against its limits."""
    headers: dict[str, str] = {}
    if facts is None:
        return headers
    for kind, limit, remaining, reset in (
        ("requests", facts.limit_requests, facts.remaining_requests, facts.reset_requests),
        ("tokens", facts.limit_tokens, facts.remaining_tokens, facts.reset_tokens),
    ):
        if limit is not None:
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(remaining or 0)
            headers[f"x-ratelimit-reset-{kind}"] = duration(reset or 0)
    return headers


def error_headers(exc: ChatgateError) -> dict[str, str]:
    headers: dict[str, str] = {}
    if isinstance(exc, LimitExceeded):
        headers.update(rate_headers(exc.facts))
        headers.update(exc.headers)
        if exc.retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None and "retry-after" not in headers:
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
    headers["x-should-retry"] = "true" if exc.retryable else "false"
    return headers


def error_response(exc: ChatgateError) -> Response:
    return JsonReply(orjson.dumps(error_body(exc)), exc.status, error_headers(exc))


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JsonReply(orjson.dumps(data), status, headers)
