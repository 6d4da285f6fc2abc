"""``chatgate ask`` as a user runs it: a subprocess on a real data directory, or against a live
server with a key; the demo model answers."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from databases import process_env
from faulty_upstream import FaultyUpstream, finish
from support import Gateway, free_port

ROOT = Path(__file__).parents[2]


def run(
    data_dir: Path, *args: str, stdin: str | None = None, **env_extra: str
) -> subprocess.CompletedProcess[str]:
    env = process_env()
    env.update(
        CHATGATE_DATA_DIR=str(data_dir),
        CHATGATE_DEMO_CHUNK_DELAY="0",
        PYTHONPATH=str(ROOT),
        **env_extra,
    )
    return subprocess.run(
        [sys.executable, "-m", "chatgate", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_piped_input_is_added_to_the_prompt_and_answered_in_plain_text(tmp_path: Path) -> None:
    result = run(tmp_path, "ask", "review", stdin="this diff\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('You asked: "review this diff"')
    assert "\x1b" not in result.stdout, "no colours on a pipe"
    assert "```python\ndef answer():" in result.stdout, "the raw Markdown on a pipe"
    assert result.stderr == ""


def test_json_gives_the_whole_response_and_c_continues_its_conversation(tmp_path: Path) -> None:
    first = run(tmp_path, "ask", "--json", "--system", "Be brief.", "first question")
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    assert body["content"].startswith('You asked: "first question"')
    assert body["model"] == "demo" and body["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] > 0 and body["message_id"]
    second = json.loads(run(tmp_path, "ask", "-c", "--json", "second").stdout)
    assert second["conversation_id"] == body["conversation_id"]
    assert second["parent_id"] != body["parent_id"]
    shown = run(tmp_path, "conversations", "show", body["conversation_id"][:8])
    assert "first question" in shown.stdout and "second" in shown.stdout


def test_no_stream_prints_the_same_answer_at_once(tmp_path: Path) -> None:
    streamed = run(tmp_path, "ask", "same question")
    whole = run(tmp_path, "ask", "--no-stream", "same question")
    assert whole.returncode == 0 and whole.stdout == streamed.stdout


def test_refusals_exit_non_zero_with_one_line(tmp_path: Path) -> None:
    assert "nothing to ask" in one_line_error(run(tmp_path, "ask", "  "))
    assert "no-such-model" in one_line_error(run(tmp_path, "ask", "--model", "no-such-model", "hi"))


def test_the_local_user_has_no_cap_until_the_operator_sets_one(tmp_path: Path) -> None:
    team_default = {"CHATGATE_DEFAULT_DAILY_REQUESTS": "1"}
    for n in range(2):
        asked = run(tmp_path, "ask", "--user", "bob", f"question {n}", **team_default)
        assert asked.returncode == 0, asked.stderr
    capped = run(tmp_path, "users", "set-quota", "bob", "--daily-requests", "2")
    assert capped.returncode == 0, capped.stderr
    line = one_line_error(run(tmp_path, "ask", "--user", "bob", "one more"))
    assert "all 2 of today's requests" in line, line


def test_an_answer_the_provider_filtered_says_so_on_stderr(tmp_path: Path) -> None:
    upstream = FaultyUpstream().start()
    try:
        upstream.enqueue(finish("content_filter"))
        env = {"OPENAI_BASE_URL": upstream.base_url, "OPENAI_API_KEY": "sk-up"}
        result = run(tmp_path, "ask", "--model", "demo", "--json", "hi", **env)
    finally:
        upstream.stop()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["finish_reason"] == "content_filter"
    assert result.stderr == "(the provider withheld part of this answer)\n"


def test_an_upstream_that_is_down_is_one_line(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"
    result = run(tmp_path, "ask", "--model", "gpt-4o", "hi", OPENAI_BASE_URL=down)
    line = one_line_error(result)
    assert "127.0.0.1" in line or "upstream" in line.lower()


def test_remote_mode_answers_with_a_good_key_and_refuses_a_bad_one(
    tmp_path: Path, make_gateway: Callable[..., Gateway]
) -> None:
    gateway = make_gateway()
    key = gateway.key("alice")
    good = run(
        tmp_path / "elsewhere",
        "ask",
        "--json",
        "from afar",
        CHATGATE_URL=gateway.url,
        CHATGATE_API_KEY=key,
    )
    assert good.returncode == 0, good.stderr
    body = json.loads(good.stdout)
    assert body["content"].startswith('You asked: "from afar"')
    stored = [m.content for m in gateway.stored_messages()]
    assert "from afar" in stored
    bad = run(tmp_path, "ask", "--url", gateway.url, "--key", "sk-cg-not-a-key", "hi")
    assert "key" in one_line_error(bad).lower()


def test_the_server_and_key_may_come_from_the_settings_file(
    tmp_path: Path, make_gateway: Callable[..., Gateway]
) -> None:
    gateway = make_gateway()
    config = tmp_path / "chatgate.toml"
    config.write_text(f'url = "{gateway.url}"\napi_key = "{gateway.key("alice")}"\n')
    result = run(tmp_path / "here", "--config", str(config), "ask", "--json", "from the file")
    assert result.returncode == 0, result.stderr
    assert "from the file" in [m.content for m in gateway.stored_messages()]
    assert not (tmp_path / "here" / "chatgate.db").exists(), "nothing was asked in process"


def test_a_data_directory_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = one_line_error(run(blocker / "data", "ask", "hi"))
    assert "Not a directory" in line and "a-file" in line


def test_a_redis_that_is_down_is_one_line(tmp_path: Path) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    line = one_line_error(run(tmp_path, "ask", "hi", CHATGATE_REDIS_URL=down))
    assert "ConnectionError" in line and "127.0.0.1" in line


@pytest.mark.sqlite  # holds SQLite's lock on the file
def test_a_reply_the_database_would_not_store_says_so(tmp_path: Path) -> None:
    assert run(tmp_path, "ask", "first").returncode == 0
    holder = sqlite3.connect(tmp_path / "chatgate.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        result = run(tmp_path, "ask", "second")
    finally:
        holder.close()
    assert result.stdout.startswith('You asked: "second"'), "the answer is still shown"
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), result.stderr
    assert "database writes are failing" in lines[0] and "locked" in lines[0]
    assert "not written" in lines[-1]
    assert len(lines) == len(set(lines)), "each problem is said once"
    assert "Traceback" not in result.stderr
