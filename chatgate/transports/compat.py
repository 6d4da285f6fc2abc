"""What the older programs' protocols share: who an anonymous caller is, which model answers
requests that name none, and the ask protocol's lines (``<|end|>``, ``<|err|>``), used over both
WebSocket and gRPC."""

from __future__ import annotations

from chatgate.core.accounts import Principal
from chatgate.core.errors import AuthenticationFailed, ChatgateError, InvalidRequest, NotFound
from chatgate.core.events import ChatRequest, Done
from chatgate.services import Services

NEW = "new"
END = "<|end|>"
ERR = "<|err|>"


async def compat_principal(services: Services, token: str | None) -> Principal:
    """The caller's own credential when they send one, else the operator's anonymous user,
    whose quota every anonymous caller shares; refused when there is none."""
    if token is not None:
        return await services.accounts.authenticate(token)
    name = services.settings.anonymous_user
    if name is None:
        raise AuthenticationFailed(
            "This server needs an API key: send 'Authorization: Bearer KEY' (or '?token=KEY')."
        )
    user = await services.accounts.ensure_user(name)
    return services.accounts.principal_for(user)


def compat_model(services: Services) -> str:
    """The model for requests that name none: ``compat_model``, else the first one offered."""
    name = services.settings.compat_model
    if name is not None:
        return name
    names = services.models.names()
    if not names:
        raise NotFound("No model is available.")
    return names[0]


def ask_request(model: str, prompt: str, conversation_id: str, parent_id: str) -> ChatRequest:
    """An ask: ``new`` for either id starts a new stored conversation; a conversation id with
    an empty parent continues from that conversation's latest message."""
    if not prompt:
        raise InvalidRequest("The prompt is empty.", param="prompt")
    fresh = conversation_id in ("", NEW) or parent_id == NEW
    return ChatRequest(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        conversation_id=NEW if fresh else conversation_id,
        parent_id=None if fresh else (parent_id or None),
    )


def end_line(done: Done) -> str:
    """``<|end|>$conversation_id$parent_id``: the parent to send next is this reply's id."""
    return f"{END}${done.conversation_id or ''}${done.message_id or ''}"


def err_line(exc: ChatgateError) -> str:
    return f"{ERR}${exc.message}"
