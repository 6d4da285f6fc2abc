"""A ChatGPT data export through ``chatgate import`` and back out through ``chatgate
conversations export``, in subprocesses against a real data directory."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from databases import process_env, query

ROOT = Path(__file__).parents[2]
FIXTURE = Path(__file__).parents[1] / "fixtures" / "chatgpt_conversations.json"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def run(data_dir: Path, *args: str, columns: str = "200") -> subprocess.CompletedProcess[str]:
    env = process_env()
    env.update(CHATGATE_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT), COLUMNS=columns)
    if not columns:
        del env["COLUMNS"]
    return subprocess.run(
        [sys.executable, "-m", "chatgate", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def export_zip(tmp_path: Path) -> Path:
    """The archive as ChatGPT sends it: conversations.json beside the other files."""
    path = tmp_path / "chatgpt-export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(FIXTURE, "conversations.json")
        archive.writestr("user.json", json.dumps({"id": "user-abc", "email": "a@example.com"}))
        archive.writestr("message_feedback.json", "[]")
        archive.writestr("chat.html", "<html></html>")
    return path


def expected_messages(conversation: dict[str, Any]) -> set[tuple[str, str, str | None]]:
    """(role, text, parent's text) of every visible message, read straight from the export;
    a hidden or empty node passes its children on to its own nearest visible ancestor."""
    mapping = conversation["mapping"]

    def visible(node_id: str) -> str | None:
        message = mapping[node_id]["message"]
        if message is None or message["metadata"].get("is_visually_hidden_from_conversation"):
            return None
        text = "\n".join(p for p in message["content"]["parts"] if isinstance(p, str))
        return text if text.strip() else None

    def above(node_id: str) -> str | None:
        parent = mapping[node_id]["parent"]
        while parent is not None and visible(parent) is None:
            parent = mapping[parent]["parent"]
        return visible(parent) if parent is not None else None

    return {
        (mapping[n]["message"]["author"]["role"], text, above(n))
        for n in mapping
        if (text := visible(n)) is not None
    }


def exported_messages(export: dict[str, Any]) -> set[tuple[str, str, str | None]]:
    by_id = {m["id"]: m for m in export["messages"]}
    return {
        (m["role"], m["content"], by_id[m["parent_id"]]["content"] if m["parent_id"] else None)
        for m in export["messages"]
    }


def test_a_chatgpt_export_with_a_branch_round_trips_through_import_and_json_export(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    source = json.loads(FIXTURE.read_text())
    imported = run(data, "import", str(export_zip(tmp_path)), "--user", "alice", "--create-user")
    assert imported.returncode == 0, imported.stderr
    assert "imported 2 conversation(s) with 9 message(s) for alice" in imported.stdout

    listed = run(data, "conversations", "list", "--user", "alice")
    assert "Boiling eggs" in listed.stdout and "SQL 窗口函数" in listed.stdout
    eggs_id = next(
        line.split("│")[1].strip() for line in listed.stdout.splitlines() if "Boiling eggs" in line
    )

    exported = run(data, "conversations", "export", eggs_id, "--format", "json")
    assert exported.returncode == 0, exported.stderr
    tree = json.loads(exported.stdout)
    assert tree["title"] == "Boiling eggs"
    assert exported_messages(tree) == expected_messages(source[0])
    assert len(tree["messages"]) == 7 and len(tree["current_path"]) == 4
    by_id = {m["id"]: m["content"] for m in tree["messages"]}
    assert [by_id[i] for i in tree["current_path"]][-2:] == [
        "And at high altitude?",
        "Water boils cooler up high, so add a minute or two per 1,000 metres.",
    ]


def test_importing_the_same_export_again_adds_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run(data, "import", str(FIXTURE), "--user", "alice", "--create-user").returncode == 0
    again = run(data, "import", str(export_zip(tmp_path)), "--user", "alice")
    assert again.returncode == 0, again.stderr
    assert "imported 0 conversation(s) with 0 message(s)" in again.stdout
    assert "2 already there" in again.stdout


def test_importing_for_a_user_who_does_not_exist_is_refused_unless_asked(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    assert run(data, "users", "create", "alice").returncode == 0
    typo = run(data, "import", str(FIXTURE), "--user", "alcie")
    assert typo.returncode == 1 and "Traceback" not in typo.stderr
    assert "no user named 'alcie'" in typo.stderr and "--create-user" in typo.stderr
    assert "alcie" not in run(data, "users", "list").stdout
    assert "Boiling eggs" not in run(data, "conversations", "list").stdout

    created = run(data, "import", str(FIXTURE), "--user", "dave", "--create-user")
    assert created.returncode == 0, created.stderr
    assert "imported 2 conversation(s) with 9 message(s) for dave; 0 already there" in (
        created.stdout
    )
    assert "dave" in run(data, "users", "list").stdout


def test_two_users_each_import_the_same_export_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run(data, "users", "create", "alice")
    run(data, "users", "create", "bob")
    for user in ("alice", "bob"):
        first = run(data, "import", str(FIXTURE), "--user", user)
        assert first.returncode == 0, first.stderr
        assert f"imported 2 conversation(s) with 9 message(s) for {user}; 0 already there" in (
            first.stdout
        )
        assert "Boiling eggs" in run(data, "conversations", "list", "--user", user).stdout
    again = run(data, "import", str(FIXTURE), "--user", "bob")
    assert "imported 0 conversation(s) with 0 message(s) for bob; 2 already there" in again.stdout


def test_conversations_imported_by_an_earlier_version_are_not_imported_again(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    run(data, "import", str(FIXTURE), "--user", "alice", "--create-user")
    # ids as earlier versions stored them
    query(data, "UPDATE conversations SET external_id = substr(external_id, 3)")
    stored = [row[0] for row in query(data, "SELECT external_id FROM conversations")]
    assert all(e.startswith("chatgpt:") for e in stored)
    again = run(data, "import", str(FIXTURE), "--user", "alice")
    assert "imported 0 conversation(s) with 0 message(s) for alice; 2 already there" in (
        again.stdout
    )


def test_markdown_export_quotes_questions_on_the_current_path(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run(data, "import", str(FIXTURE), "--user", "alice", "--create-user")
    listed = run(data, "conversations", "list", "--search", "altitude")
    [row] = [line for line in listed.stdout.splitlines() if "Boiling eggs" in line]
    conversation_id = row.split("│")[1].strip()
    md = run(data, "conversations", "export", conversation_id, "--format", "md").stdout
    assert md.startswith("# Boiling eggs\n\nModel: gpt-4o · 2025-01-2")
    assert "> How long should I boil an egg?\n\nBring water to a boil" in md
    assert "> And at high altitude?\n\nWater boils cooler" in md
    assert "duck egg" not in md and "9 to 12 minutes" not in md


def test_another_users_name_hides_the_conversation_from_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run(data, "import", str(FIXTURE), "--user", "alice", "--create-user")
    run(data, "users", "create", "bob")
    listed = run(data, "conversations", "list", "--user", "bob")
    assert "Boiling eggs" not in listed.stdout
    everyone = run(data, "conversations", "list")
    conversation_id = next(
        line.split("│")[1].strip() for line in everyone.stdout.splitlines() if "Boiling" in line
    )
    shown = run(data, "conversations", "show", conversation_id, "--user", "bob")
    assert shown.returncode == 1 and "No conversation" in shown.stderr
    assert "And at high altitude?" in run(data, "conversations", "show", conversation_id).stdout


def test_a_file_that_is_not_an_export_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text('{"hello": 1}')
    result = run(tmp_path / "data", "import", str(bad), "--user", "alice", "--create-user")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "mapping" in result.stderr


@pytest.mark.parametrize("columns", ["", "80", "60", "40"])
def test_listed_ids_are_whole_in_a_narrow_terminal_or_a_pipe(tmp_path: Path, columns: str) -> None:
    data = tmp_path / "data"
    run(data, "import", str(FIXTURE), "--user", "alice", "--create-user")
    listed = run(data, "conversations", "list", columns=columns)
    assert listed.returncode == 0, listed.stderr
    ids = UUID.findall(listed.stdout)
    assert len(ids) == 2 and "…" not in "".join(
        line.split("│")[1] for line in listed.stdout.splitlines() if line.startswith("│")
    )
    for conversation_id in ids:
        shown = run(data, "conversations", "show", conversation_id)
        assert shown.returncode == 0, shown.stderr


@pytest.mark.sqlite  # rewrites ids under foreign keys, which a bare SQLite connection lets it do
def test_show_and_export_take_any_unambiguous_start_of_an_id(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run(data, "import", str(FIXTURE), "--user", "alice", "--create-user")
    with sqlite3.connect(data / "chatgate.db") as db:  # two ids that start alike
        db.execute("UPDATE messages SET conversation_id = 'c0ffee' || substr(conversation_id, 7)")
        db.execute("UPDATE conversations SET id = 'c0ffee' || substr(id, 7)")
        ids = sorted(row[0] for row in db.execute("SELECT id FROM conversations"))
    assert len(ids) == 2 and ids[0][:13] != ids[1][:13]

    for conversation_id in ids:
        start = conversation_id[:13]
        shown = run(data, "conversations", "show", start)
        assert shown.returncode == 0, shown.stderr
        exported = run(data, "conversations", "export", start, "--format", "json")
        assert json.loads(exported.stdout)["id"] == conversation_id

    for command in (["show"], ["export", "--format", "md"]):
        both = run(data, "conversations", *command, "c0ffee")
        assert both.returncode == 1 and "Traceback" not in both.stderr
        assert "give more of the id" in both.stderr
        assert all(conversation_id in both.stderr for conversation_id in ids)
    unknown = run(data, "conversations", "show", "feed")
    assert unknown.returncode == 1 and "No conversation with id 'feed'" in unknown.stderr
