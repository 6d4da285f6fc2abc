"""Fitting a conversation into a model's context window.

The system prompt and the new question always go; the history between them is cut to the last
``max_turns`` exchanges, then whole turns are dropped oldest first until the estimate fits. A turn
starts at a user message, so the history never begins with an orphaned reply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from chatgate.core.events import Message
from chatgate.core.tokens import PER_MESSAGE_OVERHEAD, estimate_tokens, message_text

Counter = Callable[[str], int]
REPLY_RESERVE_MAX = 1024


def _tiktoken_counter() -> Counter | None:
    """An exact BPE counter when tiktoken and its encoding are available offline, else None."""
    try:
        import tiktoken  # type: ignore[import-not-found,unused-ignore]

        encoding = tiktoken.get_encoding("o200k_base")
    except Exception:
        return None

    def count(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    return count


class TokenCounter:
    """Counts tokens with tiktoken when installed, else with the offline estimate."""

    def __init__(self, use_tokenizer: bool = True) -> None:
        self._count: Counter = estimate_tokens
        self.exact = False
        if use_tokenizer:
            counter = _tiktoken_counter()
            if counter is not None:
                self._count, self.exact = counter, True

    def text(self, text: str) -> int:
        return self._count(text) if text else 0

    def message(self, message: Message) -> int:
        return PER_MESSAGE_OVERHEAD + self.text(message_text(message))


def reply_reserve(params: dict[str, Any], window: int) -> int:
    """Room left for the answer: what the caller asked for, else a quarter of the window."""
    asked = params.get("max_completion_tokens", params.get("max_tokens"))
    if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0:
        return asked
    return min(REPLY_RESERVE_MAX, window // 4)


def turn_starts(history: Sequence[Message]) -> list[int]:
    """Indexes where a turn begins: each user message (and the start, if it is not one)."""
    starts = [i for i, m in enumerate(history) if m.get("role") == "user"]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    return starts


def fit(
    system: Sequence[Message],
    history: Sequence[Message],
    new: Sequence[Message],
    *,
    budget: int,
    sizes: Sequence[int],
    fixed: int,
    max_turns: int | None = None,
) -> list[Message]:
    """The messages to send: ``system + tail of history + new`` within ``budget`` tokens.

    ``sizes[i]`` is the token count of ``history[i]``; ``fixed`` is that of system and new
    together. When even those do not fit they are still sent whole: the upstream's own
    context-length error is clearer than a question silently cut.
    """
    if not history:
        return [*system, *new]
    starts = turn_starts(history)
    if max_turns is not None:
        starts = starts[-max_turns:] if max_turns > 0 else []
    total = sum(sizes[starts[0] :]) if starts else 0
    room = budget - fixed - 2
    first = 0
    while first < len(starts) and total > room:
        end = starts[first + 1] if first + 1 < len(starts) else len(history)
        total -= sum(sizes[starts[first] : end])
        first += 1
    kept = list(history[starts[first] :]) if first < len(starts) else []
    return [*system, *kept, *new]
