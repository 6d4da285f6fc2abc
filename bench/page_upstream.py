"""A fake OpenAI-compatible upstream that answers in long, varied Markdown, for the page's
benchmark (``bench/page.py``).

A reply is a document of sections (headings, paragraphs with emphasis, links and inline code,
lists, tables, fenced code in several languages, inline and display math), cut into word-sized
pieces; where it starts in that document depends on the question, so a long conversation shows
every kind of block. It has ``max_tokens`` pieces (``--tokens`` when the request names none),
one per streamed chunk, a chunk every ``--interval`` seconds like a real model.

Run it alone with ``python -m bench.page_upstream --port 8002 [--interval 0.005] [--tokens 4000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import time
from typing import Any

import orjson
from aiohttp import web

MODEL = "bench-markdown"
_PIECE = re.compile(r"\S+\s*|\s+")

_SECTIONS = (
    "## Section {n}: an overview\n\nThe gateway keeps **every conversation** as a tree, so a "
    "reply can be *regenerated* or edited without losing the old one. See "
    "[the README](https://example.invalid/readme) and the `ChatService.stream` method for the "
    "details of how a reply travels from the model to the page.\n\n",
    "### Steps {n}\n\n1. Read the question and the path of earlier turns.\n2. Reserve the "
    "quota, then ask the model.\n3. Relay every delta as it arrives, and settle the usage at "
    "the end.\n\n- a bullet with `inline code`\n- a bullet with **bold** and _italic_ text\n"
    "- a bullet with a [link](https://example.invalid/{n})\n\n",
    "```python\ndef fibonacci_{n}(limit: int) -> list[int]:\n    numbers = [0, 1]\n    while "
    "numbers[-1] + numbers[-2] < limit:\n        numbers.append(numbers[-1] + numbers[-2])\n"
    "    return numbers\n```\n\n",
    "| model | context | price per 1k tokens |\n|---|---:|---:|\n| small-{n} | 8192 | 0.0005 |"
    "\n| large-{n} | 128000 | 0.0100 |\n| local-{n} | 32768 | 0 |\n\n",
    "The sum of the first $n$ odd numbers is $n^2$, and Euler's identity $e^{{i\\pi}} + 1 = 0$ "
    "links five constants. In display:\n\n$$\n\\int_0^1 x^{n} \\, dx = \\frac{{1}}{{{n} + "
    "1}}\n$$\n\n",
    "```javascript\nexport function debounce{n}(fn, wait) {{\n  let timer;\n  return (...args) "
    "=> {{\n    clearTimeout(timer);\n    timer = setTimeout(() => fn(...args), wait);\n  }};\n"
    "}}\n```\n\n",
    "> A quoted remark number {n}: light pages load fast, and a reply that streams should "
    "re-render only what changed.\n\n",
    "```rust\nfn main() {{\n    let words: Vec<&str> = \"one two three {n}\".split(' ')"
    '.collect();\n    println!("{{}}", words.len());\n}}\n```\n\n',
)


def markdown_pieces(n: int, start: int = 0) -> list[str]:
    """At least ``n`` word-sized pieces of Markdown, from section ``start`` on; the last
    section is kept whole, so no block is left open."""
    pieces: list[str] = []
    i = start
    while len(pieces) < n:
        text = _SECTIONS[i % len(_SECTIONS)].format(n=i)
        pieces.extend(_PIECE.findall(text))
        i += 1
    return pieces


def first_section(question: str) -> int:
    """Where the reply to ``question`` starts in the document (modulo its sections)."""
    seed = hashlib.blake2b(question.encode(), digest_size=2).digest()
    return int.from_bytes(seed, "big") % len(_SECTIONS)


def plain_question() -> str:
    """A question whose short reply is prose only (no code, table or math)."""
    return next(q for i in range(100) if first_section(q := f"Hello {i}") == 0)


def _question(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return str(message.get("content"))
    return ""


class Upstream:
    def __init__(self, interval: float, tokens: int) -> None:
        self.interval = interval
        self.tokens = tokens

    async def models(self, request: web.Request) -> web.Response:
        data = [{"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}]
        return web.json_response({"object": "list", "data": data})

    async def complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("model") != MODEL:
            return web.json_response({"error": {"message": "no such model"}}, status=404)
        wanted = body.get("max_completion_tokens") or body.get("max_tokens") or self.tokens
        pieces = markdown_pieces(int(wanted), first_section(_question(body)))
        prompt = len(orjson.dumps(body.get("messages") or [])) // 4 + 1
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": len(pieces),
            "total_tokens": prompt + len(pieces),
        }
        base = {"id": f"chatcmpl-page{time.monotonic_ns()}", "created": int(time.time())}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(pieces), "refusal": None}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            whole = {**base, "object": "chat.completion", "model": MODEL, "choices": [choice]}
            return web.json_response({**whole, "usage": usage})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def event(delta: dict[str, Any] | None, finish: str | None, **extra: Any) -> None:
            choices = (
                [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            )
            data = {**base, "object": "chat.completion.chunk", "model": MODEL, "choices": choices}
            await response.write(b"data: " + orjson.dumps({**data, **extra}) + b"\n\n")

        await event({"role": "assistant", "content": ""}, None)
        for piece in pieces:
            await asyncio.sleep(self.interval)
            await event({"content": piece}, None)
        await event({}, "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            await event(None, None, usage=usage)
        await response.write(b"data: [DONE]\n\n")
        return response


def app(interval: float, tokens: int) -> web.Application:
    upstream = Upstream(interval, tokens)
    application = web.Application()
    application.router.add_get("/v1/models", upstream.models)
    application.router.add_post("/v1/chat/completions", upstream.complete)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--interval", type=float, default=0.005, help="seconds between chunks")
    parser.add_argument("--tokens", type=int, default=4000, help="pieces of a reply by default")
    args = parser.parse_args()
    web.run_app(app(args.interval, args.tokens), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
