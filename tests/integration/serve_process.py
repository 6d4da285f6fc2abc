"""``chatgate serve`` in a process of its own, as an operator runs it, and the databases it may
share with others: a PostgreSQL database of its own, a Redis key prefix of its own."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis
from support import free_port, remember

ROOT = Path(__file__).parents[2]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/0"


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on the local PostgreSQL server, dropped afterwards."""

    async def run(statement: str) -> bool:
        try:
            conn = await asyncpg.connect(PG_ADMIN, timeout=3)
        except (OSError, asyncpg.PostgresError):
            return False
        try:
            await conn.execute(statement)
        finally:
            await conn.close()
        return True

    def blocking(statement: str) -> bool:  # from a test's event loop too
        with concurrent.futures.ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, run(statement)).result()

    name = "chatgate_serve_" + secrets.token_hex(6)
    if not blocking(f'CREATE DATABASE "{name}"'):
        pytest.skip("no PostgreSQL server is accepting connections at 127.0.0.1:5432")
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        blocking(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_prefix() -> str:
    """A key prefix no other test uses, on the local Redis (skips without one)."""
    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=3).ping()
    except redis.RedisError:
        pytest.skip("no Redis server is accepting connections at 127.0.0.1:6379")
    return f"chatgate-test-{secrets.token_hex(6)}:"


def serve_env(data: Path, **settings: str) -> dict[str, str]:
    """The environment of a ``chatgate`` process: none of the caller's settings, these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATGATE_", "OPENAI_"))}
    env.update(CHATGATE_DATA_DIR=str(data), PYTHONPATH=str(ROOT), COLUMNS="200")
    env.setdefault("CHATGATE_SECRET_KEY", remember(secrets.token_urlsafe(24)))
    env.update({f"CHATGATE_{name.upper()}": value for name, value in settings.items()})
    return env


def chatgate(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "chatgate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class Serve:
    """``chatgate serve`` in a process of its own, its log in a file."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chatgate", "serve", "--port", str(self.port), *args],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def lines(self) -> list[str]:
        return self.log_path.read_text().splitlines()

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "chatgate serve ended:\n" + "\n".join(self.lines())
            if any("chatgate listening on" in line for line in self.lines()):
                return
            time.sleep(0.1)
        raise AssertionError("chatgate serve did not say it listens:\n" + "\n".join(self.lines()))

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """Die at once, as a machine that fails: nothing is finished or written."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def wait(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30)
