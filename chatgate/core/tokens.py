"""Offline token estimates, for when an upstream reports no usage and for fitting context.

Roughly four characters per token for alphabetic scripts and one per character for CJK, which
is close to what BPE tokenizers produce; a tokenizer may replace this where one is installed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PER_MESSAGE_OVERHEAD = 4


def _is_wide(ch: str) -> bool:
    code = ord(ch)
    return (
        0x3000 <= code <= 0x9FFF
        or 0xAC00 <= code <= 0xD7AF
        or 0xF900 <= code <= 0xFAFF
        or 0xFF00 <= code <= 0xFFEF
        or code >= 0x20000
    )


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    if text.isascii():
        return max(1, (len(text) + 3) // 4)
    wide = sum(1 for ch in text if _is_wide(ch))
    return max(1, wide + (len(text) - wide + 3) // 4)


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def estimate_messages(messages: Iterable[dict[str, Any]]) -> int:
    return sum(PER_MESSAGE_OVERHEAD + estimate_tokens(message_text(m)) for m in messages) + 2
