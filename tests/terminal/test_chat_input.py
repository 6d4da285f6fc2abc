"""What ``chatgate chat`` takes from the keyboard and its options, checked where it lands: in
the request the model server receives, in the input history of the next run, and on a pipe."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faulty_upstream import FaultyUpstream
from terminal import Terminal

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

PROMPT = "you>"


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    server = FaultyUpstream(models=("alpha", "beta")).start()
    yield server
    server.stop()


def chat(data: Path, upstream: FaultyUpstream, *args: str) -> Terminal:
    terminal = Terminal(
        data,
        "chat",
        "--user",
        "me",
        *args,
        OPENAI_BASE_URL=upstream.base_url,
        OPENAI_API_KEY="sk-test-upstream",
        CHATGATE_CONVERSATION_TITLES="false",  # only the questions reach the model server
    )
    terminal.wait_for(PROMPT)
    return terminal


def asked(upstream: FaultyUpstream, question: str) -> dict[str, Any] | None:
    """The request that carried ``question`` as its last message, once it has arrived."""
    for seen in upstream.chat_requests():
        messages = seen.body.get("messages") or []
        if messages and messages[-1].get("content") == question:
            return seen.body
    return None


def test_options_model_switches_and_alt_enter_reach_the_model_server(
    tmp_path: Path, upstream: FaultyUpstream
) -> None:
    terminal = chat(tmp_path / "data", upstream, "--model", "alpha", "--temperature", "0.3")
    try:
        terminal.type("first question")
        terminal.wait(lambda s: asked(upstream, "first question") is not None)
        terminal.wait_for(PROMPT, 2)
        sent = asked(upstream, "first question")
        assert sent is not None
        assert sent["model"] == "alpha" and sent["temperature"] == 0.3

        terminal.type("/model beta")
        terminal.wait_for("model: beta")
        terminal.type("line one", enter=False)
        terminal.keys("M-Enter")  # Alt-Enter: a new line, not a send
        terminal.type("line two")
        terminal.wait(lambda s: asked(upstream, "line one\nline two") is not None)
        sent = asked(upstream, "line one\nline two")
        assert sent is not None and sent["model"] == "beta", "one question, sent to beta"
        terminal.type("QUIT")
        terminal.wait_for("[exited]")
    finally:
        terminal.close()


def test_the_input_history_is_kept_across_runs(tmp_path: Path, upstream: FaultyUpstream) -> None:
    data = tmp_path / "data"
    first = chat(data, upstream)
    try:
        first.type("remember this question")
        first.wait_for(PROMPT, 2)
        first.type("QUIT")
        first.wait_for("[exited]")
    finally:
        first.close()
    again = chat(data, upstream)
    try:
        assert "remember this question" not in again.screen()
        again.keys("Up")
        again.wait_for("you> QUIT")  # the last thing typed, then the one before it
        again.keys("Up")
        again.wait_for("you> remember this question")
        again.keys("Enter")
        again.wait(lambda s: len(upstream.chat_requests()) == 2)
        assert asked(upstream, "remember this question") is not None
    finally:
        again.close()


def test_chat_writes_plain_text_when_its_output_is_a_pipe(tmp_path: Path) -> None:
    terminal = Terminal(
        tmp_path / "data", "chat", "--user", "me", through="cat", CHATGATE_DEMO_CHUNK_DELAY="0"
    )
    try:
        terminal.wait_for(PROMPT)
        terminal.type("Show me some code")
        shown = terminal.wait(lambda s: "your own upstream." in s)
        assert "```python" in shown and "**demo**" in shown, "the raw Markdown, not rendered"
        coloured = terminal.screen(ansi=True)
        code_line = next(line for line in coloured.splitlines() if "def answer" in line)
        assert "\x1b[38;5;" not in code_line, "no colours on a pipe"
    finally:
        terminal.close()
