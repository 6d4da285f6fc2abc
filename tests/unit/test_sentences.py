# ruff: noqa: RUF001 - Chinese punctuation is what these tests are about
"""Sentence mode: whole short sentences, never cut inside quotes, whatever the piece sizes."""

from __future__ import annotations

import pytest

from chatgate.core.sentences import SentenceSplitter, split_sentences

MIXED = (
    "他说：“今天很好，我们去西湖吧！”然后走了。"
    'She said "wait, what? no!" and left, '
    "it's fine……真的吗？Yes!"
)


def test_chinese_and_english_text_with_quotes_comes_out_in_whole_sentences() -> None:
    assert split_sentences(MIXED) == [
        "他说：“今天很好，我们去西湖吧！”",
        "然后走了。",
        'She said "wait, what? no!"',
        " and left,",
        " it's fine……",
        "真的吗？",
        "Yes!",
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_piece_sizes_do_not_change_the_sentences(size: int) -> None:
    splitter = SentenceSplitter()
    out: list[str] = []
    for i in range(0, len(MIXED), size):
        out.extend(splitter.feed(MIXED[i : i + size]))
    out.append(splitter.flush())
    assert out == split_sentences(MIXED)
    assert "".join(out) == MIXED


def test_runs_of_terminators_stay_with_their_sentence() -> None:
    assert split_sentences("真的？！好。。走") == ["真的？！", "好。。", "走"]


def test_a_single_ellipsis_character_does_not_cut() -> None:
    assert split_sentences("嗯…好吧，行") == ["嗯…好吧，", "行"]


def test_single_quotes_pair_up_but_apostrophes_do_not_open_one() -> None:
    assert split_sentences("don't, 'a, b!' c, d") == ["don't,", " 'a, b!'", " c,", " d"]


def test_an_unclosed_quote_keeps_the_rest_together_until_the_end() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("好，“一，二，三") == ["好，"]
    assert splitter.flush() == "“一，二，三"
