"""The ``chatgate`` command as a user runs it, in a subprocess against a real data directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import openai
import pytest
from databases import process_env, stored_bytes
from support import Gateway

from chatgate.settings import Settings

ROOT = Path(__file__).parents[2]


def run(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = process_env()
    env.update(CHATGATE_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "chatgate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_admin_creates_a_user_and_a_key_that_the_openai_sdk_accepts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = run(
        data,
        "users",
        "create",
        "alice",
        "--admin",
        "--password-stdin",
        stdin="correct horse battery\n",
    )
    assert created.returncode == 0, created.stderr
    assert "created admin alice" in created.stdout
    made = run(data, "keys", "create", "--user", "alice", "--name", "laptop")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("sk-cg-") and len(key) == len("sk-cg-") + 43
    assert made.stdout == key + "\n", "the key alone, for export CHATGATE_KEY=$(…)"
    assert "shown once" in made.stderr

    listed = run(data, "keys", "list")
    assert "laptop" in listed.stdout and key[:12] in listed.stdout
    assert key not in listed.stdout and key.encode() not in stored_bytes(data)

    gateway = Gateway(Settings.load(data_dir=data, grpc_port=0, demo_chunk_delay=0)).start()
    try:
        api = openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)
        assert api.models.list().data[0].id == "demo"
    finally:
        gateway.stop()

    revoked = run(data, "keys", "revoke", "1")
    assert revoked.returncode == 0 and "revoked key 1" in revoked.stdout


def test_duplicate_user_is_a_clear_error_with_exit_code_1(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run(data, "users", "create", "bob").returncode == 0
    again = run(data, "users", "create", "bob")
    assert again.returncode == 1 and "already exists" in again.stderr


@pytest.mark.parametrize("stdin", ["", "\n"])
def test_an_admin_without_a_password_is_refused_when_there_is_no_terminal(
    tmp_path: Path, stdin: str
) -> None:
    data = tmp_path / "data"
    args = ["users", "create", "root", "--admin"] + (["--password-stdin"] if stdin else [])
    refused = run(data, *args, stdin=stdin)
    assert refused.returncode == 2, refused.stdout
    assert "needs a password" in refused.stderr and "--password-stdin" in refused.stderr
    assert "root" not in run(data, "users", "list").stdout
    assert run(data, "users", "create", "root").returncode == 0  # a plain user may use keys only


def test_set_quota_shows_in_users_list(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run(data, "users", "create", "carol")
    done = run(data, "users", "set-quota", "carol", "--daily-requests", "5", "--rpm", "-1")
    assert done.returncode == 0, done.stderr
    assert "daily_requests=5" in done.stdout and "rpm=unlimited" in done.stdout
    listed = run(data, "users", "list")
    assert "carol" in listed.stdout and " 5 " in listed.stdout


def test_db_upgrade_reports_success(tmp_path: Path) -> None:
    result = run(tmp_path / "data", "db", "upgrade")
    assert result.returncode == 0 and "up to date" in result.stdout


@pytest.mark.parametrize("args", [["keys", "revoke", "99"], ["keys", "create", "--user", "nobody"]])
def test_unknown_things_are_reported_not_tracebacks(tmp_path: Path, args: list[str]) -> None:
    result = run(tmp_path / "data", *args)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "error:" in result.stderr


_OPEN_AND_LIST_MODULES = """
import asyncio, sys
from chatgate.app import create_app
from chatgate.services import Services
from chatgate.settings import Settings

async def main() -> None:
    settings = Settings.load(data_dir=sys.argv[1], grpc_port=0)
    create_app(settings)
    services = await Services.open(settings)
    print("current" if await services.db.is_current() else "behind")
    await services.close()
    print(" ".join(name for name in ("alembic", "grpc") if name in sys.modules))

asyncio.run(main())
"""


def test_server_on_a_current_database_loads_neither_alembic_nor_grpc(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run(data, "db", "upgrade").returncode == 0
    env = process_env()
    env.update(PYTHONPATH=str(ROOT))
    probe = [sys.executable, "-c", _OPEN_AND_LIST_MODULES, str(data)]
    done = subprocess.run(probe, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["current", ""]


@pytest.mark.sqlite  # a fresh file; on PostgreSQL each test starts from a migrated copy
def test_a_fresh_database_is_still_migrated_when_served(tmp_path: Path) -> None:
    env = process_env()
    env.update(PYTHONPATH=str(ROOT))
    probe = [sys.executable, "-c", _OPEN_AND_LIST_MODULES, str(tmp_path / "fresh")]
    done = subprocess.run(probe, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["current", "alembic"]
