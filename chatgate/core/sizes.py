"""The size limits of what a conversation keeps: a message may have at most
``max_message_chars`` characters and a system prompt at most ``max_system_chars``.

One rule for every transport: ``ChatService`` checks each request's messages (and its ``system``)
before the quota is taken, so nothing oversize is stored or sent upstream whichever transport
carried it; the native routes that store a system prompt outside a chat call ``check_sizes``.
The body limit alone would let one message fill a whole request. On the OpenAI hot path this is
a ``len()`` and a look at the role per message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chatgate.core.errors import PayloadTooLarge
from chatgate.settings import Settings

SYSTEM_ROLES = frozenset(("system", "developer"))


def check_sizes(
    settings: Settings, *, content: str | None = None, system: str | None = None
) -> None:
    """A message (``content``) or a system prompt that would be stored must fit its limit."""
    if content is not None and len(content) > settings.max_message_chars:
        raise message_too_long(settings)
    if system is not None and len(system) > settings.max_system_chars:
        raise system_too_long(settings)


def check_message_sizes(settings: Settings, messages: Iterable[dict[str, Any]]) -> None:
    """``check_sizes`` for a request's messages. System and developer messages are held
    together to the system prompt's limit, as a conversation stores them joined (by a blank
    line) as its one system prompt; a list of content parts counts the characters of its texts.
    """
    max_message, max_system = settings.max_message_chars, settings.max_system_chars
    system = -2
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            size = len(content)
        elif isinstance(content, list):
            size = sum(_text_size(part) for part in content)
        else:
            continue
        if message.get("role") in SYSTEM_ROLES:
            system += size + 2
            if system > max_system:
                raise system_too_long(settings)
        elif size > max_message:
            raise message_too_long(settings)


def check_prompt_size(settings: Settings, prompt: str | list[str] | None) -> None:
    """A legacy completion's prompt (or each of its prompts) is a message like any other."""
    for text in [prompt] if isinstance(prompt, str) else prompt or ():
        if isinstance(text, str) and len(text) > settings.max_message_chars:
            raise message_too_long(settings, param="prompt")


def _text_size(part: Any) -> int:
    text = part.get("text") if isinstance(part, dict) else None
    return len(text) if isinstance(text, str) else 0


def message_too_long(settings: Settings, param: str = "content") -> PayloadTooLarge:
    return PayloadTooLarge(
        f"A message may have at most {settings.max_message_chars} characters.", param=param
    )


def system_too_long(settings: Settings) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"A system prompt may have at most {settings.max_system_chars} characters.",
        param="system",
    )
