"""Fitting a conversation into the context window: what is dropped, and what never is."""

from __future__ import annotations

from chatgate.core.context import TokenCounter, fit, reply_reserve, turn_starts
from chatgate.core.events import Message

counter = TokenCounter(use_tokenizer=False)


def turns(n: int, words: int = 50) -> list[Message]:
    history: list[Message] = []
    for i in range(n):
        history.append({"role": "user", "content": f"question {i} " + "word " * words})
        history.append({"role": "assistant", "content": f"answer {i} " + "word " * words})
    return history


def fitted(history: list[Message], budget: int, max_turns: int | None = None) -> list[Message]:
    system = [{"role": "system", "content": "You are terse."}]
    new = [{"role": "user", "content": "the new question"}]
    fixed = sum(counter.message(m) for m in system + new)
    return fit(
        system,
        history,
        new,
        budget=budget,
        sizes=[counter.message(m) for m in history],
        fixed=fixed,
        max_turns=max_turns,
    )


def test_truncation_keeps_the_system_prompt_and_the_newest_turns() -> None:
    history = turns(10)
    out = fitted(history, budget=400)
    assert out[0] == {"role": "system", "content": "You are terse."}
    assert out[-1] == {"role": "user", "content": "the new question"}
    kept = out[1:-1]
    assert 0 < len(kept) < len(history)
    assert kept == history[-len(kept) :]
    assert kept[0]["role"] == "user" and kept[0]["content"].startswith("question")
    assert sum(counter.message(m) for m in out) <= 400


def test_everything_is_sent_when_it_fits() -> None:
    history = turns(3)
    assert fitted(history, budget=100_000)[1:-1] == history


def test_max_history_turns_keeps_only_the_last_exchanges() -> None:
    history = turns(5)
    out = fitted(history, budget=100_000, max_turns=2)
    assert out[1:-1] == history[-4:]


def test_system_prompt_and_question_go_even_when_nothing_else_fits() -> None:
    out = fitted(turns(4), budget=5)
    assert [m["content"] for m in out] == ["You are terse.", "the new question"]


def test_a_history_that_starts_with_a_reply_is_dropped_as_one_turn() -> None:
    history: list[Message] = [
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
    ]
    assert turn_starts(history) == [0, 1]


def test_the_reply_gets_room_in_the_window() -> None:
    assert reply_reserve({"max_tokens": 300}, 8192) == 300
    assert reply_reserve({}, 8192) == 1024
    assert reply_reserve({}, 2000) == 500


def test_cjk_text_counts_about_one_token_per_character() -> None:
    assert counter.text("你好世界") == 4
    assert counter.text("hello world!") == 3
