"""What every HTTP route shares: reading the caller's credential and body, and the one place
where a ``ChatgateError`` becomes an HTTP response (OpenAI's error shape and headers).

A caller proves who they are with ``Authorization: Bearer`` (an API key or a login JWT) or, for
the web page, with the HttpOnly login cookie set by ``POST /api/v1/auth/login``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Scope

from chatgate import request_ids
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
    UnsupportedMediaType,
)
from chatgate.core.sizes import check_message_sizes as check_message_sizes
from chatgate.core.sizes import check_sizes as check_sizes
from chatgate.services import Services
from chatgate.transports.asgi import Head, JsonReply

SESSION_COOKIE = "chatgate_session"
# Where ``authenticate_scope`` keeps the caller in ``scope["state"]``.
PRINCIPAL = "chatgate.principal"
_SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))
_SAME_ORIGIN = frozenset((b"same-origin", b"none"))
# What a login that must first choose a new password may still do.
PASSWORD_CHANGE_PATHS = frozenset(("/api/v1/auth/password", "/api/v1/auth/logout"))

# The last resort's answer, when a bug (not the client) made a request fail.
INTERNAL = ChatgateError("The server had an error while processing your request.")

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
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
    """``credential_of`` for a raw ASGI route (which the cookie may serve only for writes from
    this site's own pages)."""
    token = bearer(head.authorization)
    if token is None and head.cookie:
        token = head.cookies().get(SESSION_COOKIE) or None
        if token is not None:
            check_cookie_write(head.scope)
    return token


async def authenticate(conn: HTTPConnection) -> Principal:
    """The caller: the one found before the body was read (``ChatgateApp``), else from the
    Bearer credential or the login cookie."""
    state = conn.scope.get("state")
    if state is not None:
        principal: Principal | None = state.get(PRINCIPAL)
        if principal is not None:
            return principal
    token = bearer_token(conn)
    if token is None:
        token = conn.cookies.get(SESSION_COOKIE) or None
        if token is not None:
            check_cookie_write(conn.scope)
    changing = conn.scope.get("path") in PASSWORD_CHANGE_PATHS
    return await authenticate_credential(services_of(conn), token, changing_password=changing)


async def authenticate_scope(scope: Scope) -> Response | None:
    """Authenticate a request from its headers alone, before anything reads its body, and keep
    the caller in ``scope["state"]`` for ``authenticate``; the refusal when there is none, so
    a body is never read (or parsed) for a caller who may not send it."""
    try:
        principal = await authenticate(HTTPConnection(scope))
    except ChatgateError as exc:
        return error_response(exc)
    scope.setdefault("state", {})[PRINCIPAL] = principal
    return None


def check_cookie_write(scope: Scope) -> None:
    """A write authenticated by the login cookie must come from this site's own pages, as JSON.

    Browsers send the cookie along with requests that other sites make them send, so a write
    that rests on it is refused when ``Sec-Fetch-Site`` says another site made it (or, from a
    browser without that header, when ``Origin`` names another host), and when its body is not
    JSON: a form or ``text/plain`` body is what a page can send to another site without asking
    first (an ``application/zip`` upload is held to the same rule of origin, and is no form
    either). Bearer credentials are never sent by a browser on its own, so they need neither
    check; reading requests (GET) change nothing.
    """
    if scope.get("method", "GET") in _SAFE_METHODS:
        return
    check_cookie_site(scope)
    headers = dict(scope["headers"])
    has_body = b"transfer-encoding" in headers or headers.get(b"content-length", b"0") != b"0"
    content_type = headers.get(b"content-type", b"")
    if has_body and not (is_json(content_type) or is_zip(content_type) or is_csv(content_type)):
        raise UnsupportedMediaType(
            "A request made with the login cookie must send its body as application/json "
            "(or an upload as application/zip or text/csv)."
        )


def check_cookie_site(scope: Scope) -> None:
    """A request authenticated by the login cookie must come from this site's own pages:
    ``check_cookie_write``'s rule of origin, for the requests that are not writes but still act
    for the caller (a WebSocket handshake, a question asked with ``GET``)."""
    headers = dict(scope["headers"])
    site = headers.get(b"sec-fetch-site")
    origin = headers.get(b"origin")
    if site is not None:
        foreign = site not in _SAME_ORIGIN
    elif origin is not None:
        foreign = urlsplit(origin.decode("latin-1")).netloc.lower() != (
            headers.get(b"host", b"").decode("latin-1").lower()
        )
    else:
        foreign = False
    if foreign:
        raise PermissionDenied(
            "A request from another site cannot use the login cookie; "
            "send an API key as 'Authorization: Bearer' instead."
        )


def is_zip(content_type: bytes) -> bool:
    """An archive upload: like JSON, a type no page can send to another site without asking
    first (it is not one of the types a form may send)."""
    return content_type.partition(b";")[0].strip().lower() == b"application/zip"


def is_csv(content_type: bytes) -> bool:
    """A CSV upload (users in bulk): not a type a form may send either."""
    return content_type.partition(b";")[0].strip().lower() == b"text/csv"


def is_json(content_type: bytes) -> bool:
    kind = content_type.partition(b";")[0].strip().lower()
    return kind == b"application/json" or (
        kind.startswith(b"application/") and kind.endswith(b"+json")
    )


async def authenticate_credential(
    services: Services, token: str | None, *, changing_password: bool = False
) -> Principal:
    """``changing_password``: the request may come from a login that must first choose a new
    password, which may do that (or log out) and nothing else."""
    if token is None:
        raise AuthenticationFailed(
            "You didn't provide an API key. Provide it in the Authorization header "
            "(Authorization: Bearer YOUR_KEY)."
        )
    return await services.accounts.authenticate(token, changing_password=changing_password)


async def require_admin(conn: HTTPConnection) -> Principal:
    principal = await authenticate(conn)
    if not principal.is_admin:
        raise PermissionDenied("This needs an administrator.")
    return principal


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The JSON object of a body, refused as soon as it is known to be larger than ``limit``
    (the app's own limit, enforced while reading, counts as the same refusal)."""
    too_large = PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large
    parts: list[bytes] = []
    size = 0
    try:
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise too_large
            parts.append(part)
    except StarletteHTTPException as exc:
        if exc.status_code == 413:
            raise too_large from None
        raise
    return parse_object(b"".join(parts))


class StrictRequest(Request):
    """A request whose JSON body is read with orjson, as JSON itself is: ``NaN``, ``Infinity``
    and numbers too large for a double are refused, where the standard library would take
    them (``expires_days: Infinity`` would make a key that never expires)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class StrictRoute(APIRoute):
    """The route class of every native router: bodies are parsed by ``StrictRequest``. A body
    orjson refuses raises its ``JSONDecodeError`` (a ``json.JSONDecodeError``), which FastAPI
    answers as any malformed body: 422 in the JSON error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictRequest(request.scope, request.receive, request._send))

        return strict


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
    if exc.error_type is not None:
        kind = exc.error_type
    elif isinstance(exc, QuotaExhausted):
        kind = "insufficient_quota"
    elif isinstance(exc, LimitExceeded):
        kind = "requests"
    else:
        kind = _TYPES.get(
            exc.status, "server_error" if exc.status >= 500 else "invalid_request_error"
        )
    error = {"message": exc.message, "type": kind, "param": exc.param, "code": exc.code}
    rid = request_ids.current.get()
    if rid is not None:
        error["request_id"] = rid  # the same id as the answer's x-request-id and the log's
    return {"error": error}


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
