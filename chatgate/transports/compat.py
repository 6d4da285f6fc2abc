"""What the older programs' protocols share: who an anonymous caller is, which model answers
requests that name none, and the ask protocol (``<|ask|>``, ``<|end|>``, ``<|err|>``), spoken
over both WebSocket and gRPC.

Every compatibility transport identifies its caller through ``compat_principal`` and nowhere
else, so the anonymous-user rule is the same on each of them.

Reply text never forges the protocol's own lines: ``<|`` inside a reply is sent as ``<``,
U+200B (zero-width space), ``|``, and a ``<`` at the end of a piece waits for the next piece,
so no text frame can start with, or join up into, ``<|end|>`` or ``<|err|>``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing

from starlette.requests import HTTPConnection

from chatgate.core.accounts import Principal
from chatgate.core.errors import AuthenticationFailed, ChatgateError, InvalidRequest, NotFound
from chatgate.core.events import ChatRequest, Delta, Done, ErrorEvent
from chatgate.services import Services
from chatgate.transports.http_common import authenticate, credential_of, services_of

log = logging.getLogger("chatgate.compat")

NEW = "new"
ASK = "<|ask|>"
END = "<|end|>"
ERR = "<|err|>"
MARK = "<|"
SAFE_MARK = "<\u200b|"
MAX_ID = 64
INTERNAL = "Something went wrong on our side; the error has been logged."


async def compat_principal(
    services: Services, token: str | None, *, anonymous: bool = True
) -> Principal:
    """The caller's own credential when they send one, else the operator's anonymous user,
    whose quota every anonymous caller shares; refused when there is none. ``anonymous=False``
    for a protocol whose clients always sent a credential (ChatAPI's JWT)."""
    if token is not None:
        return await services.accounts.authenticate(token)
    name = services.settings.anonymous_user if anonymous else None
    if name is None:
        raise AuthenticationFailed(
            "This server needs an API key: send 'Authorization: Bearer KEY' (or '?token=KEY')."
        )
    user = await services.accounts.ensure_user(name)
    return services.accounts.principal_for(user)


async def http_principal(conn: HTTPConnection, *, anonymous: bool = True) -> Principal:
    """``compat_principal`` for an HTTP route: a credential that is sent (Bearer, or the login
    cookie with the checks every HTTP route makes of it) is used, else the anonymous user."""
    if credential_of(conn) is not None:
        return await authenticate(conn)
    return await compat_principal(services_of(conn), None, anonymous=anonymous)


def compat_model(services: Services) -> str:
    """The model for requests that name none: ``compat_model``, else the first one offered."""
    name = services.settings.compat_model
    if name is not None:
        return name
    names = services.models.names()
    if not names:
        raise NotFound("No model is available.")
    return names[0]


# ---- the ask protocol -----------------------------------------------------------------------


def _id(value: str, name: str) -> str:
    if len(value) > MAX_ID or "$" in value:
        raise InvalidRequest(f"{name}: not a valid id.", param=name)
    return value


def ask_request(model: str, prompt: str, conversation_id: str, parent_id: str) -> ChatRequest:
    """An ask. ``new`` (or empty) as the conversation starts a new stored conversation; a
    conversation id with ``new`` (or empty) as the parent continues that conversation from its
    latest message, as the original program did."""
    if not prompt.strip():
        raise InvalidRequest("The prompt is empty.", param="prompt")
    conversation = _id(conversation_id, "conversation_id")
    parent = _id(parent_id, "parent_id")
    fresh = conversation in ("", NEW)
    return ChatRequest(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        conversation_id=NEW if fresh else conversation,
        parent_id=None if fresh or parent in ("", NEW) else parent,
    )


def parse_ask(frame: str, model: str) -> ChatRequest:
    """``<|ask|>$CONVERSATION$PARENT$PROMPT``; the prompt may itself contain ``$``."""
    head, sep, rest = frame.partition("$")
    parts = rest.split("$", 2)
    if head != ASK or not sep or len(parts) != 3:
        raise InvalidRequest(f"malformed frame: expected {ASK}$conversation$parent$prompt")
    conversation_id, parent_id, prompt = parts
    return ask_request(model, prompt, conversation_id, parent_id)


class ReplyText:
    """Reply pieces made safe to send as ask-protocol frames (see the module's docstring)."""

    def __init__(self) -> None:
        self.held = ""

    def feed(self, text: str) -> str:
        text = (self.held + text).replace(MARK, SAFE_MARK)
        self.held = "<" if text.endswith("<") else ""
        return text[: len(text) - len(self.held)]

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held


def end_line(done: Done) -> str:
    """``<|end|>$conversation_id$parent_id``: the parent to send next is this reply's id."""
    return f"{END}${done.conversation_id or ''}${done.message_id or ''}"


def err_line(exc: ChatgateError) -> str:
    return f"{ERR}${exc.message}"


async def ask_lines(
    services: Services, caller: Callable[[], Awaitable[Principal]], request: ChatRequest
) -> AsyncGenerator[str]:
    """One ask's frames, for WebSocket and gRPC alike: the reply's pieces, then the end line or
    an error line. Whatever fails, the last line is ``<|end|>`` or ``<|err|>``."""
    text = ReplyText()
    try:
        principal = await caller()
        async with aclosing(services.chat.stream(principal, request)) as events:
            async for event in events:
                if isinstance(event, Delta):
                    if piece := text.feed(event.text):
                        yield piece
                else:
                    if rest := text.flush():
                        yield rest
                    yield end_line(event) if isinstance(event, Done) else err_line(event.error)
    except ChatgateError as exc:
        yield err_line(exc)
    except Exception:
        log.exception("an ask failed")
        yield err_line(ChatgateError(INTERNAL))


async def ask_call(
    services: Services, token: str | None, prompt: str, conversation_id: str, parent_id: str
) -> AsyncGenerator[str]:
    """One ask that arrives with its own credential (a gRPC call): the caller is identified
    first, then the question is read; a refusal of either is an ``<|err|>`` line."""
    try:
        principal = await compat_principal(services, token)
        request = ask_request(compat_model(services), prompt, conversation_id, parent_id)
    except ChatgateError as exc:
        yield err_line(exc)
        return

    async def caller() -> Principal:
        return principal

    async with aclosing(ask_lines(services, caller, request)) as lines:
        async for line in lines:
            yield line


async def whole_reply(
    services: Services, principal: Principal, chat: ChatRequest
) -> tuple[str, Done]:
    """The reply to ``chat`` as one text, for the older HTTP protocols that answer in one body;
    an error the stream ends with is raised."""
    texts: list[str] = []
    async with aclosing(services.chat.stream(principal, chat)) as events:
        async for event in events:
            if isinstance(event, Delta):
                texts.append(event.text)
            elif isinstance(event, ErrorEvent):
                raise event.error
            elif isinstance(event, Done):
                return "".join(texts), event
    raise RuntimeError("the chat stream ended without a Done event")
