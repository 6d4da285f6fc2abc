"""Is a reply complete and right? A fast wrong answer counts as an error.

A streamed reply must be a clean sequence of ``data:`` events ending in ``data: [DONE]``, with
exactly the expected content pieces in order and a finish reason; a whole reply must carry the
expected text. An extra event with the conversation ids (when storage is on) is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from bench.load import Sample


@dataclass(frozen=True, slots=True)
class Expect:
    """What every reply of a run must be."""

    pieces: tuple[str, ...]
    stream: bool
    status: int = 200
    allow_quota: bool = False  # a 429 in OpenAI's insufficient_quota shape is also right


@dataclass(slots=True)
class Verdict:
    ok: bool
    rejected: bool = False  # an expected 429
    stored: bool = False  # the reply names the conversation it was stored in
    why: str = ""


def check(sample: Sample, expect: Expect) -> Verdict:
    if sample.error is not None:
        return Verdict(False, why=sample.error)
    if expect.allow_quota and sample.status == 429:
        return _check_quota(sample.body)
    if sample.status != expect.status:
        return Verdict(False, why=f"HTTP {sample.status}: {sample.body[:200]!r}")
    try:
        if expect.stream:
            return _check_stream(sample.body, expect.pieces)
        return _check_whole(sample.body, expect.pieces)
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
        return Verdict(False, why=f"malformed reply ({type(exc).__name__}: {exc})")


def _check_quota(body: bytes) -> Verdict:
    data = orjson.loads(body)
    if data.get("error", {}).get("type") != "insufficient_quota":
        return Verdict(False, why=f"429 without insufficient_quota: {body[:200]!r}")
    return Verdict(True, rejected=True)


def _check_whole(body: bytes, pieces: tuple[str, ...]) -> Verdict:
    data: dict[str, Any] = orjson.loads(body)
    choice = data["choices"][0]
    text = choice["message"]["content"] if "message" in choice else choice["text"]
    if text != "".join(pieces):
        return Verdict(False, why=f"wrong text: {text[:80]!r}")
    if not choice.get("finish_reason"):
        return Verdict(False, why="no finish_reason")
    return Verdict(True, stored="conversation_id" in data)


def _check_stream(body: bytes, pieces: tuple[str, ...]) -> Verdict:
    events = [e for e in body.split(b"\n\n") if e.strip()]
    if not events or events[-1].strip() != b"data: [DONE]":
        return Verdict(False, why="stream did not end with data: [DONE]")
    got: list[str] = []
    finish = None
    stored = False
    for event in events[:-1]:
        if not event.startswith(b"data: "):
            return Verdict(False, why=f"not an SSE data event: {event[:80]!r}")
        data = orjson.loads(event[6:])
        if "error" in data:
            return Verdict(False, why=f"error event: {event[:200]!r}")
        stored = stored or "conversation_id" in data
        for choice in data.get("choices") or ():
            delta = choice.get("delta")
            text = delta.get("content") if delta is not None else choice.get("text")
            if text:
                got.append(text)
            finish = choice.get("finish_reason") or finish
    if "".join(got) != "".join(pieces):
        return Verdict(False, why=f"wrong text ({len(got)} of {len(pieces)} pieces)")
    if finish is None:
        return Verdict(False, why="no finish_reason")
    return Verdict(True, stored=stored)
