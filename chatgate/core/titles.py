"""Conversation titles: the first words of the question at once, the model's own title later.

The model is asked in the background after the first exchange, straight through the provider
router: it is the service's request, not the user's, so it is not counted against their cap,
and the reply the user waits for never waits for it.
"""

from __future__ import annotations

import re
from contextlib import aclosing

from chatgate.providers.base import UpstreamCall
from chatgate.providers.router import ModelRegistry, ModelRoute, Served

FALLBACK_WORDS = 8
MAX_TITLE = 80
UNTITLED = "New conversation"
_INSTRUCTION = (
    "Write a short title, at most six words, for a conversation that begins with the user's "
    "message below. Answer with the title only, without quotes."
)
_DECORATION = re.compile(r"^[\s#*_>`\"'“”「」-]+|[\s*_`\"'“”「」.。]+$")


def shorten(text: str, limit: int = MAX_TITLE) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def fallback_title(question: str) -> str:
    """The first words of the question, on one line."""
    words = question.split()
    if not words:
        return UNTITLED
    title = " ".join(words[:FALLBACK_WORDS])
    if len(words) > FALLBACK_WORDS:
        title += "…"
    return shorten(title)


def clean_title(reply: str) -> str | None:
    """The first non-empty line of a model's answer, without markdown or quotes."""
    for line in reply.splitlines():
        line = _DECORATION.sub("", line.strip())
        if line:
            return shorten(" ".join(line.split()))
    return None


async def ask_title(models: ModelRegistry, route: ModelRoute, question: str) -> str | None:
    """Ask the conversation's own model for a title; None when it gives nothing usable."""
    if route.config.kind != "chat":
        return None
    call = UpstreamCall(
        body={
            "model": route.name,
            "stream": False,
            "max_tokens": 24,
            "messages": [
                {"role": "system", "content": _INSTRUCTION},
                {"role": "user", "content": question[:2000]},
            ],
        }
    )
    texts: list[str] = []
    async with aclosing(models.stream(route, call, Served())) as pieces:
        async for piece in pieces:
            texts.append(piece.text)
    return clean_title("".join(texts))
