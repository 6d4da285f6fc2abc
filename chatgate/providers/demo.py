"""The built-in demo model: no network, deterministic, and shaped like a real reply.

It answers with a little markdown (a list and a code block) that mentions the question, word by
word, honouring ``max_tokens`` (finish_reason ``length``), ``stop`` and tool calls. When the
messages end in an assistant's, it goes on with that reply from where its text stops. The same
plan drives the in-process provider here and the stand-alone ``chatgate demo-upstream`` server.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import orjson

from chatgate.core.errors import InvalidRequest
from chatgate.core.events import Delta, Usage
from chatgate.core.tokens import estimate_messages, estimate_tokens, message_text
from chatgate.providers.base import UpstreamCall

DEMO_MODEL = "demo"
DEMO_DIMENSIONS = 64
_WORD = re.compile(r"\S+\s*|\s+")
_TOOL_WORD = re.compile(r"\btools?\b|工具", re.IGNORECASE)


@dataclass(slots=True)
class DemoPlan:
    pieces: list[str]
    finish_reason: str
    prompt_tokens: int
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def usage(self) -> Usage:
        completion = len(self.pieces) or (1 if self.tool_calls else 0)
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=completion)


def _question(body: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The latest user text, and the latest tool result if the conversation ends in one."""
    if "prompt" in body:
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            prompt = prompt[0] if prompt else ""
        return str(prompt or ""), None
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return "", messages[-1]
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message), None
    return "", None


def compose_reply(question: str) -> str:
    q = " ".join(question.split())
    short = q if len(q) <= 80 else q[:77] + "..."
    words = q.split()[:3] or ["hello"]
    return (
        f'You asked: "{short}"\n\n'
        "This is the built-in **demo** model of chatgate. It runs without any network, so its "
        "answer is always the same for the same question:\n\n"
        f"1. Your question has {_count(len(q.split()), 'word')} and "
        f"{_count(len(q), 'character')}.\n"
        "2. The reply is streamed word by word, like a real model.\n"
        "3. Point chatgate at a real model server to get real answers.\n\n"
        "```python\n"
        "def answer():\n"
        f"    return {' '.join(words)!r}\n"
        "```\n\n"
        "Set `OPENAI_BASE_URL` and `OPENAI_API_KEY` to use your own upstream."
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _stop_list(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop] if stop else []
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return [s for s in stop if s]
    raise InvalidRequest("stop must be a string or a list of strings", param="stop")


def _max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequest("max_tokens must be a positive integer", param="max_tokens")
    return value


def _tool_names(tools: list[Any]) -> list[str]:
    names = (t.get("function", {}).get("name") for t in tools if isinstance(t, dict))
    return [n for n in names if isinstance(n, str) and n]


def _named_in(question: str, names: list[str]) -> str | None:
    """The first offered tool the question names as a word of its own."""
    for name in names:
        if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", question, re.IGNORECASE):
            return name
    return None


def _chosen_tool(body: dict[str, Any], question: str) -> str | None:
    """The tool to call, or None to answer in text (see the module's docstring)."""
    names = _tool_names(body.get("tools") or [])
    choice = body.get("tool_choice", "auto")
    if not names or choice == "none":
        return None
    if isinstance(choice, dict):
        named = choice.get("function", {}).get("name")
        return named if isinstance(named, str) and named else names[0]
    named = _named_in(question, names)
    if choice == "required" or named or _TOOL_WORD.search(question):
        return named or names[0]
    return None


def _tool_call(body: dict[str, Any], question: str) -> list[dict[str, Any]]:
    name = _chosen_tool(body, question)
    if name is None:
        return []
    arguments = orjson.dumps({"query": question}).decode()
    return [
        {
            "index": 0,
            "id": "call_demo_0",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
    ]


def _cut_reply(body: dict[str, Any]) -> str | None:
    """The text of the assistant message the conversation ends in, if it does: a reply to go on
    with (as OpenAI-compatible servers continue a final assistant message)."""
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "assistant":
        return message_text(messages[-1])
    return None


def continuation(question: str, partial: str) -> str:
    """What follows ``partial`` in the answer to ``question``: the rest of the planned answer
    when ``partial`` is its beginning (nothing when it is all of it), else the whole planned
    answer after a blank line."""
    text = compose_reply(question)
    if text.startswith(partial):
        return text[len(partial) :]
    stripped = partial.rstrip()
    if text.startswith(stripped):  # an upstream that trimmed the cut reply's last space
        return text[len(stripped) :]
    return "\n\n" + text


def plan(body: dict[str, Any]) -> DemoPlan:
    """Decide the whole reply up front: pieces, finish reason and token counts."""
    question, tool_result = _question(body)
    if "prompt" in body:
        prompt_tokens = estimate_tokens(question)
    else:
        prompt_tokens = estimate_messages(body.get("messages") or [])
    partial = None if "prompt" in body else _cut_reply(body)
    if partial is not None:
        text = continuation(question, partial)
    elif tool_result is None:
        calls = _tool_call(body, question)
        if calls:
            return DemoPlan([], "tool_calls", prompt_tokens, calls)
        text = compose_reply(question)
    else:
        text = f"The tool answered: {message_text(tool_result)}"
    stops = _stop_list(body)
    finish = "stop"
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    if cut >= 0:
        text = text[:cut]
    pieces = _WORD.findall(text)
    limit = _max_tokens(body)
    if limit is not None and len(pieces) > limit:
        pieces = pieces[:limit]
        finish = "length"
    return DemoPlan(pieces, finish, prompt_tokens)


def demo_vector(text: str, dimensions: int = DEMO_DIMENSIONS) -> list[float]:
    """A unit vector for ``text``: the sum of one seeded random vector per word, so the same
    text always gives the same vector and texts that share words point the same way."""
    total = [0.0] * dimensions
    for word in text.lower().split() or [text]:
        seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        rng = random.Random(seed)  # a fixed pattern per word, not a secret
        for i in range(dimensions):
            total[i] += rng.gauss(0.0, 1.0)
    norm = math.sqrt(sum(v * v for v in total)) or 1.0
    return [v / norm for v in total]


def demo_embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """The demo model's answer to an embeddings request, in OpenAI's shape (floats)."""
    from chatgate.core.embeddings import EmbeddingRequest  # the core imports the providers

    request = EmbeddingRequest.of(body.get("model"), body.get("input"), body.get("dimensions"))
    dimensions = request.dimensions or DEMO_DIMENSIONS
    data = [
        {"object": "embedding", "index": i, "embedding": demo_vector(text, dimensions)}
        for i, text in enumerate(request.texts)
    ]
    tokens = sum(estimate_tokens(text) for text in request.texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": request.model, "usage": usage}


class DemoProvider:
    """The demo model as an in-process provider."""

    name = "demo"

    def __init__(self, chunk_delay: float = 0.0) -> None:
        self.chunk_delay = chunk_delay

    async def list_models(self) -> list[str]:
        return [DEMO_MODEL]

    async def close(self) -> None:
        return None

    async def embed(self, body: dict[str, Any], deadline: float | None) -> Any:
        return demo_embeddings(body)

    async def stream(self, call: UpstreamCall) -> AsyncGenerator[Delta, None]:
        reply = plan(call.body)
        if reply.tool_calls:
            yield Delta(
                tool_calls=reply.tool_calls, finish_reason=reply.finish_reason, usage=reply.usage
            )
            return
        stream = call.body.get("stream", False)
        if not stream:
            yield Delta(reply.text, finish_reason=reply.finish_reason, usage=reply.usage)
            return
        last = len(reply.pieces) - 1
        for i, piece in enumerate(reply.pieces):
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            if i == last:
                yield Delta(piece, finish_reason=reply.finish_reason, usage=reply.usage)
            else:
                yield Delta(piece)
        if last < 0:
            yield Delta("", finish_reason=reply.finish_reason, usage=reply.usage)
