"""The demo model goes on with a reply it is given as the last message, from where its text
stops, so that continuing a cut reply works offline and says something checkable."""

from __future__ import annotations

from chatgate.providers.demo import _WORD, compose_reply, continuation, plan

QUESTION = "How tall do redwoods grow?"
WHOLE = compose_reply(QUESTION)
PIECES = _WORD.findall(WHOLE)


def body(partial: str, **more: object) -> dict[str, object]:
    messages = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": partial},
    ]
    return {"model": "demo", "messages": messages, **more}


def test_a_cut_reply_goes_on_with_the_rest_of_the_planned_answer() -> None:
    partial = "".join(PIECES[:10])
    reply = plan(body(partial))
    assert reply.finish_reason == "stop"
    assert partial + reply.text == WHOLE
    assert len(reply.pieces) == len(PIECES) - 10


def test_the_continuation_is_cut_again_at_max_tokens() -> None:
    partial = "".join(PIECES[:10])
    reply = plan(body(partial, max_tokens=5))
    assert reply.finish_reason == "length"
    assert reply.pieces == PIECES[10:15]


def test_a_cut_reply_whose_last_space_was_trimmed_goes_on_all_the_same() -> None:
    partial = "".join(PIECES[:10]).rstrip()
    assert partial + continuation(QUESTION, partial) == WHOLE


def test_a_whole_reply_has_nothing_more_and_a_foreign_one_gets_the_answer_after_it() -> None:
    assert plan(body(WHOLE)).text == ""
    assert continuation(QUESTION, "Something else entirely.") == "\n\n" + WHOLE
