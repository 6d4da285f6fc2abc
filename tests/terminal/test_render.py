"""What the terminal client does with text before it reaches the screen."""

from __future__ import annotations

import io

import pytest

from chatgate.cli.branches import leaves
from chatgate.cli.chat import question_of
from chatgate.cli.render import PlainView, harmless
from chatgate.cli.words import EN, ZH, words
from chatgate.core.conversation_queries import ConversationSummary, ConversationTree, MessageView


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text\nwith\ttabs", "plain text\nwith\ttabs"),
        ("\x1b[2J clear the screen", "^[[2J clear the screen"),
        ("\x1b]0;title\x07", "^[]0;title^G"),
        ("\x1b[8mhidden\x1b[0m", "^[[8mhidden^[[0m"),
        ("over\rwrite", "over^Mwrite"),
        ("windows\r\nline", "windows\nline"),
        ("back\x08space", "back^Hspace"),
        ("\x9b31m C1 CSI", "<U+009B>31m C1 CSI"),
        ("del\x7f", "del^?"),
        ("中文 and emoji 🙂", "中文 and emoji 🙂"),
    ],
)
def test_control_characters_are_shown_not_obeyed(text: str, shown: str) -> None:
    assert harmless(text) == shown
    assert "\x1b" not in harmless(text)


def test_plain_view_writes_the_harmless_text_and_ends_the_line() -> None:
    out = io.StringIO()
    view = PlainView(out)
    view.add("a\x1b[2J")
    view.add("b")
    view.end()
    assert out.getvalue() == "a^[[2Jb\n"


@pytest.mark.parametrize(
    ("typed", "question"),
    [
        ("  hello  ", "hello"),
        ('"""\nline one\nline two\n"""', "line one\nline two"),
        ('"""one line"""', "one line"),
    ],
)
def test_a_fenced_block_is_sent_without_its_fences(typed: str, question: str) -> None:
    assert question_of(typed) == question


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"LANG": "zh_CN.UTF-8"}, ZH),
        ({"LC_ALL": "zh_TW.UTF-8", "LANG": "en_US.UTF-8"}, ZH),
        ({"LC_ALL": "en_US.UTF-8", "LANG": "zh_CN.UTF-8"}, EN),
        ({"LANG": "C.UTF-8"}, EN),
        ({}, EN),
    ],
)
def test_chinese_words_for_a_chinese_locale(environ: dict[str, str], expected: object) -> None:
    assert words(environ) is expected
    assert ZH["prompt"].startswith("问") and ZH["answer"].startswith("答")


def test_branches_are_numbered_by_their_leaves_oldest_first() -> None:
    def msg(i: str, parent: str | None, role: str, at: float) -> MessageView:
        return MessageView(i, parent, role, i, None, None, 0, 0, at)

    messages = [
        msg("q", None, "user", 1),
        msg("a1", "q", "assistant", 2),
        msg("a2", "q", "assistant", 3),
        msg("q2", None, "user", 4),
    ]
    conv = ConversationSummary("c", 1, None, None, None, "a2", 0, 0)
    tree = ConversationTree(conv, messages, ["q", "a2"])
    assert [m.id for m in leaves(tree)] == ["a1", "a2", "q2"]
