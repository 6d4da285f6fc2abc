"""The older protocols' parsers against arbitrary input: the ask frame syntax, the reply-text
encoding that keeps replies from forging control lines, and the seq request. Whatever arrives,
the answer is a request or the protocol's clear error (``InvalidRequest``), nothing else."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chatgate.core.errors import InvalidRequest
from chatgate.transports.compat import END, ERR, NEW, ReplyText, parse_ask
from chatgate.transports.compat_seq import parse_seq

MARKERS = st.sampled_from(["<|ask|>", "<|end|>", "<|err|>", "<|", "<", "|", "$", "new", " "])
TEXT = st.lists(MARKERS | st.text(max_size=6), max_size=12).map("".join)
ID = st.text(st.characters(blacklist_characters="$"), max_size=70)


@settings(max_examples=200)
@given(st.one_of(TEXT, st.text()))
@example("<|ask|>$new$new$")
@example("<|ask|>$$$")
@example("<|ask|>")
def test_any_text_is_an_ask_or_the_protocols_error(frame: str) -> None:
    try:
        request = parse_ask(frame, "demo")
    except InvalidRequest as exc:
        assert exc.message
    else:
        assert frame.startswith("<|ask|>$")
        assert request.messages[0]["content"].strip()


@settings(max_examples=300)
@given(ID, ID, TEXT.filter(lambda p: p.strip()))
def test_a_well_formed_ask_keeps_its_prompt_whole_and_its_ids(
    conversation: str, parent: str, prompt: str
) -> None:
    frame = f"<|ask|>${conversation}${parent}${prompt}"
    try:
        request = parse_ask(frame, "demo")
    except InvalidRequest as exc:
        assert exc.param in ("conversation_id", "parent_id")
        assert max(len(conversation), len(parent)) > 64
        return
    assert request.messages == [{"role": "user", "content": prompt}]
    if conversation in ("", NEW):
        assert (request.conversation_id, request.parent_id) == (NEW, None)
    else:
        assert request.conversation_id == conversation
        assert request.parent_id == (None if parent in ("", NEW) else parent)


@settings(max_examples=200)
@given(st.lists(TEXT, max_size=10))
def test_reply_text_never_makes_a_control_line_and_reads_the_same(pieces: list[str]) -> None:
    text = ReplyText()
    sent = [text.feed(piece) for piece in pieces] + [text.flush()]
    joined = "".join(sent)
    assert "<|" not in joined
    assert not any(p.startswith((END, ERR)) for p in sent)
    assert joined.replace("\u200b", "") == "".join(pieces).replace("\u200b", "")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)
SEQ_KEYS = st.sampled_from(
    [
        "query",
        "messages",
        "model",
        "origin_stream",
        "openai_parameter",
        "temperature",
        "max_tokens",
        "top_p",
        "stop",
        "best_of",
        "conversation_id",
        "parent_id",
        "role",
        "content",
    ]
)
SEQ_DATA = st.recursive(
    JSON,
    lambda inner: st.dictionaries(SEQ_KEYS, inner, max_size=6) | st.lists(inner, max_size=3),
    max_leaves=15,
)


@settings(max_examples=200)
@given(st.one_of(JSON, st.fixed_dictionaries({"seq": JSON, "data": SEQ_DATA})))
def test_any_json_is_a_seq_request_or_the_protocols_error(frame: Any) -> None:
    try:
        parsed = parse_seq(frame, "demo")
    except InvalidRequest as exc:
        assert exc.message
    else:
        assert parsed.seq == frame["seq"]


@settings(max_examples=200)
@given(st.text())
def test_any_text_frame_that_is_json_parses_as_seq_or_is_refused(frame: str) -> None:
    try:
        data = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return
    with contextlib.suppress(InvalidRequest):
        parse_seq(data, "demo")
