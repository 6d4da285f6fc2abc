"""A reply taller than the terminal, streamed into a short tmux pane: what scrolls away is
printed once, in its final form, and nothing is drawn twice."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from rich.markdown import Markdown
from terminal import Terminal

from chatgate.providers.demo import compose_reply

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

WIDTH, HEIGHT = 44, 12
PROMPT, ANSWER = "you>", "ai>"


def rendered(markdown: str, width: int) -> list[str]:
    """``markdown`` as rich lays it out at ``width`` columns, line by line, without colours."""
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, highlight=False).print(
        Markdown(markdown, code_theme="monokai")
    )
    return [line.rstrip() for line in out.getvalue().splitlines()]


def reply_lines(scrollback: str, after: str, before: str) -> list[str]:
    """The lines between the first that starts with ``after`` and the next that starts with
    ``before``."""
    lines = [line.rstrip() for line in scrollback.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith(after)) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(before))
    return lines[start:end]


@pytest.mark.parametrize("mode", ["chat", "ask"])
def test_a_reply_taller_than_the_terminal_leaves_each_line_once_in_the_scrollback(
    tmp_path: Path, mode: str
) -> None:
    question = "A tall reply for a short window, please"
    expected = rendered(compose_reply(question), WIDTH)
    assert len(expected) > HEIGHT + 5, "the reply is taller than the window"
    args = ("chat",) if mode == "chat" else ("ask", question)
    terminal = Terminal(
        tmp_path / "data",
        *args,
        "--user",
        "me",
        width=WIDTH,
        height=HEIGHT,
        CHATGATE_DEMO_CHUNK_DELAY="0.03",
    )
    try:
        if mode == "chat":
            terminal.wait_for(PROMPT)
            terminal.type(question)
            terminal.wait(lambda s: f"\n{PROMPT}" in s.partition(f"\n{ANSWER}")[2], timeout=60)
            scrollback = terminal.scrollback()
            shown = reply_lines(scrollback, ANSWER, PROMPT)
        else:
            terminal.wait_for("[exited]", timeout=60)
            scrollback = terminal.scrollback()
            shown = reply_lines(f"{ANSWER}\n{scrollback}", ANSWER, "[exited]")
        while shown and not shown[-1]:
            shown.pop()
        while expected and not expected[-1]:
            expected.pop()
        assert shown == expected, "the reply appears once, as Markdown renders it"
        everything = scrollback.splitlines()
        for line in filter(None, expected):
            assert sum(x.rstrip() == line for x in everything) == 1, f"{line!r} is repeated"
        coloured = terminal.scrollback(ansi=True)
        code_line = next(line for line in coloured.splitlines() if "def" in line)
        assert "\x1b[38;5;" in code_line, "the code block ends up highlighted"
        assert "```" not in scrollback and "**demo**" not in scrollback
    finally:
        terminal.close()
