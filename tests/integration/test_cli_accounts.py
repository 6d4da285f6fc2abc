"""The account commands as an operator runs them: users, their limits and logins, key limits,
and the usage table, in subprocesses against a real data directory."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from databases import process_env
from support import Gateway, remember

from chatgate.settings import Settings

ROOT = Path(__file__).parents[2]
PASSWORD = remember("violet-Comet-8812")
OTHER_PASSWORD = remember("amber-Delta-5530")


def chatgate(data: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = process_env()
    env.update(CHATGATE_DATA_DIR=str(data), PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "chatgate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_operator_manages_users_limits_and_reads_usage(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = chatgate(data, "users", "create", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    key = remember(chatgate(data, "keys", "create", "--user", "alice").stdout.strip())
    quota = chatgate(data, "users", "set-quota", "alice", "--daily-requests", "3")
    assert "daily_requests=3" in quota.stdout
    key_quota = chatgate(data, "keys", "set-quota", "1", "--daily-requests", "2", "--rpm", "-1")
    assert "daily_requests=2" in key_quota.stdout and "rpm=none" in key_quota.stdout

    gateway = Gateway(Settings.load(data_dir=data, port=0, grpc_port=0, demo_chunk_delay=0))
    gateway.start()
    try:
        body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"Authorization": f"Bearer {key}"}
        codes = [
            httpx.post(gateway.base_url + "/chat/completions", json=body, headers=headers)
            for _ in range(3)
        ]
        assert [c.status_code for c in codes] == [200, 200, 429]
        token = gateway.login("alice", PASSWORD)
    finally:
        gateway.stop()

    table = chatgate(data, "usage", "--days", "2")
    assert table.returncode == 0, table.stderr
    [line] = [row for row in table.stdout.splitlines() if "alice" in row]
    assert "demo" in line and " 2 " in line
    assert "total" in table.stdout
    assert "alice" not in chatgate(data, "usage", "--user", "bob").stdout

    logged_out = chatgate(data, "users", "logout", "alice")
    assert logged_out.returncode == 0, logged_out.stderr
    disabled = chatgate(data, "users", "disable", "alice")
    assert "disabled alice" in disabled.stdout
    assert chatgate(data, "users", "set-role", "alice", "wizard").returncode == 1

    gateway = Gateway(Settings.load(data_dir=data, port=0, grpc_port=0)).start()
    try:
        me = gateway.url + "/api/v1/auth/me"
        assert httpx.get(me, headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert httpx.get(me, headers={"Authorization": f"Bearer {key}"}).status_code == 401
    finally:
        gateway.stop()


def test_users_list_shows_the_limits_that_apply_never_just_default(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for args in (("bob",), ("root", "--admin", "--password-stdin")):
        made = chatgate(data, "users", "create", *args, stdin=PASSWORD + "\n")
        assert made.returncode == 0, made.stderr
    quota = chatgate(data, "users", "set-quota", "bob", "--rpm", "5", "--daily-tokens", "-1")
    assert quota.stdout.split() == [
        "quota",
        "of",
        "bob:",
        "daily_requests=10",
        "(default),",
        "daily_tokens=unlimited,",
        "rpm=5,",
        "max_streams=unlimited",
        "(default)",
    ]
    listed = chatgate(data, "users", "list")
    assert listed.returncode == 0, listed.stderr
    rows = {
        cells[1]: cells[4:8]
        for line in listed.stdout.splitlines()
        if len(cells := [c.strip() for c in line.strip("│┃").split("│")]) > 8
    }
    assert rows["bob"] == ["10 (default)", "unlimited", "5", "unlimited (default)"]
    assert rows["root"] == ["unlimited (admin)"] * 4


def _in_force_soon(check: Callable[[], bool], within: float = 1.5) -> bool:
    """Whether ``check`` comes true within ``within`` seconds of now."""
    deadline = time.monotonic() + within
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


# A command, and what a running server must then refuse: the key, the login token, or the
# next chat request (a quota).
CHANGES = [
    (("keys", "revoke", "1"), "key"),
    (("users", "disable", "alice"), "key"),
    (("users", "disable", "alice"), "token"),
    (("users", "set-password", "alice", "--password-stdin"), "token"),
    (("users", "logout", "alice"), "token"),
    (("users", "set-role", "alice", "user"), "admin"),
    (("users", "set-quota", "alice", "--daily-requests", "1"), "quota"),
    (("keys", "set-quota", "1", "--daily-requests", "1"), "quota"),
]


@pytest.mark.parametrize(("command", "refused"), CHANGES)
def test_a_command_is_in_force_on_a_running_server_within_a_second(
    tmp_path: Path, command: tuple[str, ...], refused: str
) -> None:
    data = tmp_path / "data"
    made = chatgate(
        data, "users", "create", "alice", "--admin", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert made.returncode == 0, made.stderr
    key = remember(chatgate(data, "keys", "create", "--user", "alice").stdout.strip())
    gateway = Gateway(Settings.load(data_dir=data, port=0, grpc_port=0, demo_chunk_delay=0))
    gateway.start()
    try:
        token = gateway.login("alice", PASSWORD)
        credential = token if refused == "token" else key

        def status() -> int:
            if refused == "quota":
                body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
                url = gateway.base_url + "/chat/completions"
                return httpx.post(
                    url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
                ).status_code
            path = "/api/v1/admin/users" if refused == "admin" else "/api/v1/auth/me"
            headers = {"Authorization": f"Bearer {credential}"}
            return httpx.get(gateway.url + path, headers=headers).status_code

        assert status() == 200  # now cached by the server
        done = chatgate(data, *command, stdin=OTHER_PASSWORD + "\n")
        assert done.returncode == 0, done.stderr
        expected = {"quota": 429, "admin": 403}.get(refused, 401)
        assert _in_force_soon(lambda: status() == expected)
    finally:
        gateway.stop()
