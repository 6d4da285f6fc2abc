"""``chatgate chat`` in a real terminal (tmux), in process and against a live server: what a
person sees, and what is stored."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from faulty_upstream import FaultyUpstream, finish, garbage_after
from support import Gateway
from terminal import Terminal

from chatgate.cli.words import ZH
from chatgate.client.base import ChatClient
from chatgate.client.local import LocalClient
from chatgate.client.remote import RemoteClient
from chatgate.core.conversation_queries import ConversationTree
from chatgate.settings import Settings

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

PROMPT = "you>"


@dataclass
class Chat:
    """Starts ``chatgate chat`` and reads back what it stored, whichever way it talks."""

    data_dir: Path
    mode: str
    make_gateway: Callable[..., Gateway]
    gateway: Gateway | None = None
    key: str = ""
    opened: list[Terminal] = field(default_factory=list)

    def start(self, *args: str, delay: float = 0.0, **env: str) -> Terminal:
        if self.mode == "remote":
            if self.gateway is None:
                self.gateway = self.make_gateway(demo_chunk_delay=delay)
                self.key = self.gateway.key("alice")
            args = ("--url", self.gateway.url, "--key", self.key, *args)
        else:
            args = ("--user", "me", *args)
            env = {"CHATGATE_DEMO_CHUNK_DELAY": str(delay), **env}
        terminal = Terminal(self.data_dir, "chat", *args, **env)
        self.opened.append(terminal)
        terminal.wait_for(PROMPT)
        return terminal

    def trees(self) -> list[ConversationTree]:
        async def read() -> list[ConversationTree]:
            client = await self._client()
            try:
                return [await client.tree(c.id) for c in await client.conversations()]
            finally:
                await client.close()

        return asyncio.run(read())

    async def _client(self) -> ChatClient:
        if self.gateway is not None:
            return RemoteClient(self.gateway.url, self.key)
        return await LocalClient.open(Settings.load(data_dir=self.data_dir), "me")


@pytest.fixture(params=["in-process", "remote"])
def chat(
    request: pytest.FixtureRequest, tmp_path: Path, make_gateway: Callable[..., Gateway]
) -> Iterator[Chat]:
    made = Chat(tmp_path / "data", request.param, make_gateway)
    yield made
    for terminal in made.opened:
        terminal.close()


def test_a_reply_streams_progressively_and_its_code_block_ends_highlighted(chat: Chat) -> None:
    terminal = chat.start(delay=0.05)
    terminal.type("Show me some code")
    first = terminal.wait(lambda s: 'You asked: "Show me some code"' in s)
    terminal.wait(lambda s: s != first, timeout=5)
    done = terminal.wait(lambda s: "upstream." in s and s.count(PROMPT) >= 2)
    assert len(done) > len(first), "the reply grew on screen while it streamed"
    assert "```" not in done, "no raw fence markers once the reply is whole"
    assert "**demo**" not in done, "Markdown is rendered, not shown raw"
    coloured = terminal.screen(ansi=True)
    code_line = next(line for line in coloured.splitlines() if "answer" in line and "def" in line)
    assert "\x1b[38;5;" in code_line, "the code is highlighted"


def test_retry_makes_a_branch_that_branches_draws_and_switch_moves_to(chat: Chat) -> None:
    terminal = chat.start()
    terminal.type("Hello tree")
    terminal.wait_for(PROMPT, 2)
    terminal.type("/retry")
    terminal.wait_for(PROMPT, 3)
    terminal.type("/branches")
    drawn = terminal.wait(lambda s: "← current" in s)
    assert "you: Hello tree" in drawn
    assert "[1]" in drawn and "[2]  ← current" in drawn
    terminal.type("/switch 1")
    terminal.wait_for("opened")
    terminal.type("/branches")
    moved = terminal.wait(lambda s: "[1]  ← current" in s)
    assert moved.count("← current") == 2
    terminal.type("QUIT")
    terminal.wait_for("[exited]")
    (tree,) = chat.trees()
    replies = [m for m in tree.messages if m.role == "assistant"]
    assert len(replies) == 2 and tree.current_path[-1] == replies[0].id


def test_ctrl_c_stops_a_reply_and_the_partial_reply_is_kept(chat: Chat) -> None:
    terminal = chat.start(delay=0.1)
    terminal.type("Take your time")
    terminal.wait_for('You asked: "Take your time"')
    terminal.keys("C-c")
    stopped = terminal.wait_for("(stopped; the partial reply is kept)", timeout=5)
    terminal.wait_for(PROMPT, 2)
    assert "Traceback" not in stopped and "upstream." not in stopped
    terminal.type("/quit")
    terminal.wait_for("[exited]")

    deadline = time.monotonic() + 10
    while not any(m.role == "assistant" for t in chat.trees() for m in t.messages):
        assert time.monotonic() < deadline, "the partial reply was never stored"
        time.sleep(0.05)
    (tree,) = chat.trees()
    (reply,) = [m for m in tree.messages if m.role == "assistant"]
    assert reply.content.startswith('You asked: "Take your time"')
    assert "upstream." not in reply.content, "only the part that came before Ctrl-C"


def test_c_continues_where_the_last_run_left_off(chat: Chat) -> None:
    terminal = chat.start()
    terminal.type("First topic")
    terminal.wait_for(PROMPT, 2)
    terminal.type("QUIT")
    terminal.wait_for("[exited]")
    again = chat.start("-c")
    shown = again.wait_for("First topic")
    assert "opened" in shown
    again.type("Second topic")
    again.wait(lambda s: 'asked: "Second topic"' in s and s.count("upstream.") >= 2)
    again.type("QUIT")
    again.wait_for("[exited]")
    (tree,) = chat.trees()
    questions = [m.content for m in tree.path_messages() if m.role == "user"]
    assert questions == ["First topic", "Second topic"]


def test_a_conversation_made_in_the_terminal_is_visible_through_the_native_api(
    chat: Chat, make_gateway: Callable[..., Gateway]
) -> None:
    terminal = chat.start()
    terminal.type("Seen from the web")
    terminal.wait_for(PROMPT, 2)
    terminal.type("/quit")
    terminal.wait_for("[exited]")
    if chat.gateway is None:
        chat.gateway = make_gateway()
        chat.key = chat.gateway.key("me")
    headers = {"Authorization": f"Bearer {chat.key}"}
    listed = httpx.get(chat.gateway.url + "/api/v1/conversations", headers=headers).json()
    (conversation,) = listed["data"]
    detail = httpx.get(
        chat.gateway.url + f"/api/v1/conversations/{conversation['id']}", headers=headers
    ).json()
    assert detail["messages"][0]["content"] == "Seen from the web"


def test_the_question_past_a_cap_of_ten_shows_the_quota_message_as_one_line(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"

    async def cap() -> None:
        client = await LocalClient.open(Settings.load(data_dir=data), "me")
        await client.services.accounts.set_quota("me", daily_requests=10)
        await client.close()

    asyncio.run(cap())
    terminal = Terminal(data, "chat", "--user", "me", CHATGATE_DEMO_CHUNK_DELAY="0")
    try:
        terminal.wait_for(PROMPT)
        for n in range(1, 11):
            terminal.type(f"question {n}")
            terminal.wait_for("your own upstream.", n)
        terminal.wait_for("0 requests left today")
        terminal.type("question 11")
        shown = terminal.wait(
            lambda s: "error:" in s and s.rsplit("error:", 1)[1].count(PROMPT) >= 1
        )
        (line,) = [x for x in shown.splitlines() if x.startswith("error:")]
        assert "all 10 of today's requests" in line
        after = shown.split(line, 1)[1].lstrip("\n")
        assert after.startswith(PROMPT), "the prompt comes back on the next line"
        assert "Traceback" not in shown
    finally:
        terminal.close()


ESCAPES = "\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[8mhidden\x1b[0m\x9b31m"


def test_escape_sequences_in_a_reply_are_shown_harmlessly(tmp_path: Path) -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": ESCAPES}, "finish_reason": None}]}
    payload = b"data: " + json.dumps(chunk).encode() + b"\n\n"
    upstream = FaultyUpstream().start()
    try:
        upstream.enqueue(garbage_after(2, payload))
        env: dict[str, Any] = {"OPENAI_BASE_URL": upstream.base_url, "OPENAI_API_KEY": "sk-up"}
        terminal = Terminal(tmp_path / "data", "chat", "--user", "me", "--model", "demo", **env)
        try:
            terminal.wait_for(PROMPT)
            terminal.type("Say something odd")
            shown = terminal.wait(lambda s: "upstream." in s and s.count(PROMPT) >= 2)
            assert "^[[2J" in shown and "^[]0;pwned^G" in shown and "hidden" in shown
            assert "you> Say something odd" in shown, "nothing before was wiped"
            assert 'asked: "Say something odd"' in shown
            coloured = terminal.screen(ansi=True)
            assert "\x1b]0;" not in coloured and "\x1b[8m" not in coloured
        finally:
            terminal.close()
    finally:
        upstream.stop()


def test_a_reply_the_provider_filtered_says_that_content_was_withheld(tmp_path: Path) -> None:
    upstream = FaultyUpstream().start()
    try:
        upstream.enqueue(finish("content_filter"))
        env: dict[str, Any] = {"OPENAI_BASE_URL": upstream.base_url, "OPENAI_API_KEY": "sk-up"}
        terminal = Terminal(tmp_path / "data", "chat", "--user", "me", "--model", "demo", **env)
        try:
            terminal.wait_for(PROMPT)
            terminal.type("Something sensitive")
            shown = terminal.wait_for("(the provider withheld part of this reply)")
            assert 'You asked: "Something sensitive"' in shown
        finally:
            terminal.close()
    finally:
        upstream.stop()


def upstream_bodies(upstream: FaultyUpstream) -> list[dict[str, Any]]:
    """The streamed chat requests the upstream answered: replies, not the titling of a
    conversation, which asks for the whole answer at once."""
    return [seen.body for seen in upstream.chat_requests() if seen.body.get("stream")]


def test_a_system_prompt_changed_mid_conversation_answers_the_next_question(
    tmp_path: Path,
) -> None:
    upstream = FaultyUpstream().start()
    try:
        env: dict[str, Any] = {"OPENAI_BASE_URL": upstream.base_url, "OPENAI_API_KEY": "sk-up"}
        terminal = Terminal(tmp_path / "data", "chat", "--user", "me", "--model", "demo", **env)
        try:
            terminal.wait_for(PROMPT)
            terminal.type("/system Be brief.")
            terminal.wait_for("system prompt set for this new conversation")
            terminal.type("one")
            terminal.wait_for(PROMPT, 3)
            terminal.type("/system Answer in French.")
            terminal.wait_for("system prompt changed")
            terminal.type("two")
            terminal.wait_for('You asked: "two"')
        finally:
            terminal.close()
        asked = {m["messages"][-1]["content"]: m["messages"] for m in upstream_bodies(upstream)}
        first, sent = asked["one"], asked["two"]
        assert first[0] == {"role": "system", "content": "Be brief."}
        assert sent[0] == {"role": "system", "content": "Answer in French."}
        assert [m["content"] for m in sent if m["role"] == "user"] == ["one", "two"]
    finally:
        upstream.stop()


def test_edit_title_save_search_and_open_from_the_prompt(chat: Chat, tmp_path: Path) -> None:
    terminal = chat.start()
    terminal.type("Tell me about zebras")
    terminal.wait_for(PROMPT, 2)
    terminal.type("/edit Tell me about okapis")
    terminal.wait_for('asked: "Tell me about okapis"')
    terminal.wait_for(PROMPT, 3)
    terminal.type("/title Striped animals")
    terminal.wait_for(PROMPT, 4)
    saved = tmp_path / "saved.md"
    terminal.type(f"/save {saved}")
    terminal.wait_for(f"saved to {saved}")
    assert "> Tell me about okapis" in saved.read_text()
    assert "# Striped animals" in saved.read_text()
    terminal.type("/new")
    terminal.type("Something else")
    terminal.wait_for(PROMPT, 7)
    terminal.type("/search okapis")
    found = terminal.wait_for("1. Striped animals")
    assert "2." not in found.rsplit("/search okapis", 1)[1]
    terminal.type("/open Striped")
    terminal.wait_for("opened Striped animals")
    terminal.wait_for("demo · Striped animals · ")
    terminal.type("/unknown")
    assert "unknown command /unknown" in terminal.wait_for("unknown command")


ASK, ANSWER = ZH["prompt"], ZH["answer"]


def test_chinese_locale_asks_with_wen_and_answers_with_da(tmp_path: Path) -> None:
    terminal = Terminal(
        tmp_path / "data",
        "chat",
        "--user",
        "me",
        CHATGATE_DEMO_CHUNK_DELAY="0",
        LANG="zh_CN.UTF-8",
        LC_ALL="",
    )
    try:
        assert ASK.startswith("问") and ANSWER.startswith("答")
        terminal.wait_for(ASK)
        terminal.type("你好")
        shown = terminal.wait(lambda s: ANSWER in s and "upstream." in s)
        assert ASK + "你好" in shown
        terminal.press_until("C-c", "再按一次 Ctrl-C")
        terminal.keys("C-c")
        assert "再见" in terminal.wait_for("[exited]")
    finally:
        terminal.close()


def test_ctrl_c_at_an_empty_prompt_asks_once_before_leaving(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path / "data", "chat", "--user", "me")
    try:
        terminal.wait_for(PROMPT)
        terminal.type("half a thought", enter=False)
        terminal.wait_for("half a thought")
        terminal.keys("C-c")
        terminal.wait(lambda s: "half a thought" not in s)
        assert "press Ctrl-C again" not in terminal.screen(), "the first Ctrl-C clears the line"
        terminal.keys("C-c")
        terminal.wait_for("press Ctrl-C again")
        terminal.type("still here")
        terminal.wait(lambda s: "upstream." in s and s.count(PROMPT) >= 3)
        assert "bye" in terminal.press_until("C-d", "[exited]")
    finally:
        terminal.close()


def test_a_fenced_block_is_one_question_and_plain_shows_the_raw_text(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path / "data", "chat", "--user", "me", "--plain")
    try:
        terminal.wait_for(PROMPT)
        terminal.type('"""')
        terminal.type("first line")
        terminal.type('second line"""')
        shown = terminal.wait(lambda s: "upstream." in s and s.count(PROMPT) >= 2)
        assert 'You asked: "first line second line"' in shown, "one question of two lines"
        assert "```python" in shown and "**demo**" in shown, "--plain shows the raw text"
        terminal.type("/bran", enter=False)
        terminal.press_until("Tab", "/branches")
        terminal.keys("C-u")
        terminal.type("/model de", enter=False)
        terminal.press_until("Tab", "/model demo")
    finally:
        terminal.close()


def test_a_reply_cut_by_its_length_says_so_and_continue_goes_on(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path / "data", "chat", "--user", "me", "--max-tokens", "5")
    try:
        terminal.wait_for(PROMPT)
        terminal.type("A long story please")
        terminal.wait_for("(the reply was cut at its length limit: /continue goes on)")
        terminal.type("/continue")
        terminal.wait_for("length limit", 2)
        assert 'You asked: "Continue' in terminal.screen()
    finally:
        terminal.close()


def test_ask_on_a_terminal_renders_markdown_with_highlighted_code(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path / "data", "ask", "--user", "me", "Code please")
    try:
        shown = terminal.wait_for("[exited]")
        assert 'You asked: "Code please"' in shown
        assert "```" not in shown and "**demo**" not in shown
        coloured = terminal.screen(ansi=True)
        code_line = next(line for line in coloured.splitlines() if "def" in line)
        assert "\x1b[38;5;" in code_line
    finally:
        terminal.close()


def test_conversations_show_renders_markdown_on_a_terminal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    asked = Terminal(data, "ask", "--user", "me", "Shown later")
    try:
        asked.wait_for("[exited]")
    finally:
        asked.close()
    listing = Terminal(data, "conversations", "list")
    try:
        listed = listing.wait_for("[exited]")
    finally:
        listing.close()
    conversation = next(w for w in listed.split() if w.count("-") == 4)
    show = Terminal(data, "conversations", "show", conversation[:8])
    try:
        text = show.wait_for("[exited]")
        coloured = show.screen(ansi=True)
    finally:
        show.close()
    assert 'You asked: "Shown later"' in text and "```" not in text
    code_line = next(line for line in coloured.splitlines() if "def" in line)
    assert "\x1b[38;5;" in code_line


def test_conversation_opens_by_id_prefix_and_help_models_temperature_history_usage_answer(
    chat: Chat,
) -> None:
    first = chat.start()
    first.type("Tell me about llamas")
    first.wait_for(PROMPT, 2)
    first.type("QUIT")
    first.wait_for("[exited]")
    (tree,) = chat.trees()
    prefix = tree.conversation.id[:8]
    terminal = chat.start("--conversation", prefix)
    assert "Tell me about llamas" in terminal.wait_for("opened")
    terminal.type("/help")
    terminal.wait_for("X: sampling temperature, 0 to 2")
    terminal.type("/models")
    terminal.wait(lambda s: "\n  demo" in s)
    terminal.type("/temperature 3")
    terminal.wait_for("error: /temperature takes a number from 0 to 2")
    terminal.type("/temperature 0.5")
    terminal.wait_for("temperature: 0.5")
    terminal.type("/history")
    terminal.wait_for(f"  1. {tree.conversation.title or '(untitled)'}  {prefix}")
    terminal.type("/usage")
    shown = terminal.wait(lambda s: "/usage\n demo · " in s or "/usage\ndemo · " in s)
    assert "Traceback" not in shown
