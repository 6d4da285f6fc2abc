"""What the terminal commands ask of a chatgate, whichever one answers.

``ChatClient`` is the seam: ``LocalClient`` calls the core in this process as the local user,
``RemoteClient`` calls a server's native API with a key. The REPL, ``ask`` and the renderer are
written against this protocol only, so every feature works the same either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatgate.core.conversation_queries import ConversationSummary, ConversationTree

NEW = "new"


@dataclass(slots=True)
class Options:
    """How to answer: left as None, the conversation's (or the server's) choice applies."""

    model: str | None = None
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None

    def params(self) -> dict[str, Any]:
        given = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        return {k: v for k, v in given.items() if v is not None}


@dataclass(slots=True)
class Finished:
    """The end of a reply: where it was stored and why it stopped."""

    conversation_id: str | None
    message_id: str | None
    parent_id: str | None
    finish_reason: str
    model: str
    usage: dict[str, int] = field(default_factory=dict)


ReplyEvent = str | Finished
"""A piece of the reply's text, or its end."""


class ChatClient(Protocol):
    """Operations of the terminal client. Errors are ``ChatgateError``s with a readable
    ``message`` and a stable ``code``, raised before a reply or from within its stream."""

    def send(
        self,
        conversation_id: str,
        content: str,
        options: Options,
        *,
        parent_id: str | None = None,
    ) -> AsyncIterator[ReplyEvent]: ...

    def regenerate(
        self, conversation_id: str, message_id: str, options: Options
    ) -> AsyncIterator[ReplyEvent]: ...

    def edit(
        self, conversation_id: str, message_id: str, content: str, options: Options
    ) -> AsyncIterator[ReplyEvent]: ...

    async def models(self) -> list[str]: ...

    async def conversations(
        self, *, limit: int = 20, query: str | None = None
    ) -> list[ConversationSummary]: ...

    async def resolve(self, prefix: str) -> str: ...

    async def tree(self, conversation_id: str) -> ConversationTree: ...

    async def switch(self, conversation_id: str, leaf_id: str) -> None: ...

    async def rename(self, conversation_id: str, title: str) -> None: ...

    async def set_system(self, conversation_id: str, system: str) -> None:
        """Change the system prompt of a conversation; later replies are answered under it
        (an empty text removes it)."""
        ...

    async def remaining_requests(self) -> int | None: ...

    async def close(self) -> None: ...


def pick_one(prefix: str, ids: list[str]) -> str:
    """The one id that starts with ``prefix``; an error naming the candidates otherwise."""
    from chatgate.core.errors import InvalidRequest, NotFound

    found = [i for i in ids if i.startswith(prefix)] if prefix else []
    if not found:
        raise NotFound(f"No conversation with id {prefix!r}.", param="conversation_id")
    if len(found) > 1:
        raise InvalidRequest(
            f"{prefix!r} starts several conversation ids ({', '.join(found[:5])}); "
            "give more of the id.",
            param="conversation_id",
        )
    return found[0]
