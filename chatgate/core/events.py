"""What goes into the core (``ChatRequest``) and what comes out of it (``ChatEvent``).

Every transport renders these; none of them knows another transport's wire format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from chatgate.core.errors import ChatgateError

Message = dict[str, Any]


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_openai(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(slots=True)
class ChatRequest:
    """One question to a model, transport-neutral.

    ``kind`` is ``chat`` (``messages``) or ``completion`` (legacy ``prompt``). ``params`` holds the
    standard OpenAI parameters, passed through unchanged. ``conversation_id`` ("new" starts one)
    and ``parent_id`` place the exchange in a stored conversation; ``regenerate`` answers the
    question at ``parent_id`` again, and ``edit_id`` sends the message as a new sibling of that
    earlier user message.
    """

    model: str
    messages: list[Message] = field(default_factory=list)
    prompt: str | list[str] | None = None
    kind: Literal["chat", "completion"] = "chat"
    stream: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    conversation_id: str | None = None
    parent_id: str | None = None
    system: str | None = None
    regenerate: bool = False
    edit_id: str | None = None
    wants_raw: bool = False
    client_usage: bool = False
    reply_id: str | None = None
    """The id the stored reply will have, for a transport that names it before it starts."""


@dataclass(slots=True)
class Delta:
    """A piece of the reply.

    ``raw`` is the upstream's own wire bytes for this piece (complete SSE events when streaming,
    the JSON body otherwise), set only when the request asked for ``wants_raw`` and the bytes can
    be relayed unchanged. ``finish_reason`` and ``usage`` are set on the piece that carried them.
    """

    text: str = ""
    tool_calls: list[dict[str, Any]] | None = None
    raw: bytes | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    extra: dict[str, Any] | None = None


@dataclass(slots=True)
class Done:
    conversation_id: str | None
    message_id: str | None
    parent_id: str | None
    finish_reason: str
    usage: Usage
    model: str
    created: int = 0


@dataclass(slots=True)
class ErrorEvent:
    """An error after the reply has started; the partial reply has been kept."""

    error: ChatgateError


ChatEvent = Delta | Done | ErrorEvent
