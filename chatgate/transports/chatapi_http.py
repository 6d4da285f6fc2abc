"""The ChatAPI protocol, so its clients keep working: ``POST /token`` and ``GET /api?q=``.

Bodies are ``{"statu": bool, "message": …}``. ``/token`` answers 201 with a new token and 200
with the same one while it is valid; ``/api`` asks the configured model one question and counts
against the user's daily cap (429 ``Token access limit reached.`` past it). Its clients always
sent their JWT, so it has no anonymous caller; the login cookie serves too, from this site's own
pages only, although ``/api`` is a ``GET``. Every error becomes that shape here, in one place.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatgate.core.accounts import Principal
from chatgate.core.errors import (
    AuthenticationFailed,
    ChatgateError,
    InvalidCredentials,
    InvalidRequest,
    QuotaExhausted,
    UpstreamError,
)
from chatgate.core.events import ChatRequest
from chatgate.services import Services
from chatgate.transports.asgi import WatchedReply
from chatgate.transports.compat import compat_model, http_principal, whole_reply
from chatgate.transports.http_common import (
    bearer_token,
    check_cookie_site,
    credential_of,
    error_headers,
    json_response,
    read_json,
    services_of,
)

_BODY_LIMIT = 64 * 1024


def chatapi_error(exc: ChatgateError) -> Response:
    """The one mapping of errors to ChatAPI's ``statu``/``message`` shape."""
    if isinstance(exc, InvalidCredentials):
        message = "Invalid username or password"
    elif isinstance(exc, QuotaExhausted):
        message = "Token access limit reached."
    elif exc.status >= 500:
        message = f"An error occurred in the model request: {exc.message}"
    else:
        message = exc.message
    # Whatever went wrong upstream (refused, timed out, circuit open), the protocol says 502.
    status = 502 if isinstance(exc, UpstreamError) else exc.status
    return json_response(
        {"statu": False, "message": message}, status=status, headers=error_headers(exc)
    )


async def token(request: Request) -> Response:
    services = services_of(request)
    try:
        body = await read_json(request, _BODY_LIMIT)
        username, password = body.get("u"), body.get("p")
        if not isinstance(username, str) or not isinstance(password, str):
            raise InvalidRequest("Send the user name as 'u' and the password as 'p'.")
        address = request.client.host if request.client else None
        session, created = await services.logins.chatapi_token(username, password, address)
    except ChatgateError as exc:
        return chatapi_error(exc)
    expires = services.clock.local(session.claims.expires_at).strftime("%Y-%m-%d %H:%M:%S")
    message = {"username": session.user.name, "token": session.token, "expiration_time": expires}
    return json_response({"statu": True, "message": message}, status=201 if created else 200)


async def api(request: Request) -> Response:
    """The caller and the question are checked here; the answer is made as it is sent, so a
    client that leaves before it is ready cancels the upstream call at once."""
    services = services_of(request)
    try:
        if credential_of(request) is None:
            raise AuthenticationFailed("Missing Authorization Header")
        if bearer_token(request) is None:  # the login cookie asks (and spends) for its user
            check_cookie_site(request.scope)
        principal = await http_principal(request, anonymous=False)
        question = request.query_params.get("q", "")
        if not question.strip():
            raise InvalidRequest("Ask something: the 'q' parameter is missing or empty.")
        chat = ChatRequest(
            model=compat_model(services), messages=[{"role": "user", "content": question}]
        )
    except ChatgateError as exc:
        return chatapi_error(exc)
    chat.stream = False

    async def answer() -> Response:
        try:
            return await _answer(services, principal, chat)
        except ChatgateError as exc:
            return chatapi_error(exc)

    return WatchedReply(answer)


async def _answer(services: Services, principal: Principal, chat: ChatRequest) -> Response:
    text, _ = await whole_reply(services, principal, chat)
    return json_response({"statu": True, "message": text})


routes = [
    Route("/token", token, methods=["POST"]),
    Route("/api", api, methods=["GET"]),
]
