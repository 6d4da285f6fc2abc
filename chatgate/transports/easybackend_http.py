"""The EasyBackend HTTP protocol, so its clients keep working unchanged.

``POST /ask/{conversation_id}`` with ``{"prompt": …, "parent_id": …}`` (``new`` starts a
conversation) answers ``{"message", "conversation_id", "parent_id"}``, where ``parent_id`` is
the id of the reply: the one to continue from. Without a credential the caller is the
operator's anonymous user, as on every compatibility transport. Errors keep FastAPI's
``{"detail": …}`` shape, which is what that program's clients saw.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatgate.core.accounts import Principal
from chatgate.core.errors import ChatgateError, InvalidRequest
from chatgate.core.events import ChatRequest
from chatgate.services import Services
from chatgate.transports.asgi import WatchedReply
from chatgate.transports.compat import http_principal, whole_reply
from chatgate.transports.http_common import (
    error_headers,
    json_response,
    read_json,
    services_of,
)


def _error(exc: ChatgateError) -> Response:
    return json_response({"detail": exc.message}, status=exc.status, headers=error_headers(exc))


def _parse(data: dict[str, object]) -> tuple[str, str | None]:
    prompt, parent = data.get("prompt"), data.get("parent_id")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("'prompt' must be a non-empty string.", param="prompt")
    if parent is not None and (not isinstance(parent, str) or len(parent) > 64):
        raise InvalidRequest("'parent_id' must be a message id or null.", param="parent_id")
    return prompt, None if parent in ("", "new") else parent


async def ask(request: Request) -> Response:
    """The caller and the question are checked here; the answer is made as it is sent, so a
    client that leaves before it is ready cancels the upstream call at once."""
    services = services_of(request)
    conversation_id = request.path_params["conversation_id"]
    try:
        principal = await http_principal(request)
        prompt, parent_id = _parse(await read_json(request, services.settings.max_request_bytes))
        model = await services.conversations.model_for(principal, conversation_id, None)
    except ChatgateError as exc:
        return _error(exc)
    chat = ChatRequest(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        stream=False,
        conversation_id=conversation_id,
        parent_id=parent_id,
    )

    async def answer() -> Response:
        try:
            return await _answer(services, principal, chat)
        except ChatgateError as exc:
            return _error(exc)

    return WatchedReply(answer)


async def _answer(services: Services, principal: Principal, chat: ChatRequest) -> Response:
    text, done = await whole_reply(services, principal, chat)
    return json_response(
        {"message": text, "conversation_id": done.conversation_id, "parent_id": done.message_id}
    )


routes = [Route("/ask/{conversation_id}", ask, methods=["POST"])]
