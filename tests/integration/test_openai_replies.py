"""Replies rendered by chatgate itself (for models without a wire format of their own, such as
the demo model) hold to OpenAI's published schema, where ``system_fingerprint`` is a string when
it is there at all."""

from __future__ import annotations

import httpx
import orjson
from support import Gateway


def _ask(gateway: Gateway, **extra: object) -> httpx.Response:
    body = {"model": "demo", "messages": [{"role": "user", "content": "hello"}], **extra}
    return httpx.post(
        gateway.base_url + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {gateway.key('fingerprint')}"},
    )


def test_a_rendered_reply_has_no_null_system_fingerprint(gateway: Gateway) -> None:
    whole = _ask(gateway).json()
    streamed = _ask(gateway, stream=True, stream_options={"include_usage": True}).text
    chunks = [
        orjson.loads(line[len("data: ") :])
        for line in streamed.splitlines()
        if line.startswith("data: {")
    ]
    assert whole["choices"][0]["message"]["content"] and len(chunks) > 2
    for obj in [whole, *chunks]:
        assert isinstance(obj.get("system_fingerprint", ""), str), obj
