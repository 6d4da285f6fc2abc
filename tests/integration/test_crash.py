"""``kill -9`` in the middle of 20 streams: after a restart the day's count still holds them and
every question is its conversation's current message, as README "Operating it" says."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from databases import process_env, query

ROOT = Path(__file__).parents[2]
STREAMS = 20
DAILY = 25


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_for(data: Path, delay: float = 0.0) -> dict[str, str]:
    env = process_env()
    env.update(
        PYTHONPATH=str(ROOT),
        CHATGATE_DATA_DIR=str(data),
        CHATGATE_DEMO_CHUNK_DELAY=str(delay),
        CHATGATE_USAGE_FLUSH_SECONDS="0.1",
        CHATGATE_DEFAULT_DAILY_REQUESTS=str(DAILY),
        CHATGATE_CONVERSATION_TITLES="false",
    )
    return env


def chatgate(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatgate", *args],
        capture_output=True,
        text=True,
        env=env_for(data) | {"COLUMNS": "200"},
        timeout=60,
        check=False,
    )


class Server:
    """``chatgate serve`` in a process of its own, to be killed."""

    def __init__(self, data: Path, port: int, delay: float = 0.0) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = (data.parent / f"serve-{time.monotonic_ns()}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chatgate", "serve", "--port", str(port), "--grpc-port", "0"],
            env=env_for(data, delay),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError("chatgate serve did not become ready")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def terminate(self) -> None:
        """Stop as an operator would (SIGTERM): what is queued is written first."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(20)
        self.log.close()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.stop()


def stream_until_killed(
    url: str, key: str, n: int, started: threading.Barrier, failures: list[str]
) -> None:
    api = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)
    try:
        stream = api.chat.completions.create(
            model="demo",
            messages=[{"role": "user", "content": f"question {n} about crashes"}],
            stream=True,
            extra_body={"conversation_id": "new"},
        )
    except Exception as exc:
        failures.append(f"stream {n} did not start: {exc!r}")
        started.abort()
        return
    try:
        for i, _chunk in enumerate(stream):
            if i == 1:
                started.wait(120)
    except (openai.APIError, httpx.HTTPError):
        pass  # the server is gone


def test_kill_9_during_20_streams_keeps_the_days_count_and_every_question(
    data: Path, servers: list[Server]
) -> None:
    assert chatgate(data, "users", "create", "alice").returncode == 0
    made = chatgate(data, "keys", "create", "--user", "alice")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    port = free_port()
    servers.append(Server(data, port, delay=0.5))  # the demo model answers slowly

    started = threading.Barrier(STREAMS + 1)
    failures: list[str] = []
    clients = [
        threading.Thread(
            target=stream_until_killed, args=(servers[0].url, key, n, started, failures)
        )
        for n in range(STREAMS)
    ]
    for client in clients:
        client.start()
    try:
        started.wait(120)  # every stream is under way
    except threading.BrokenBarrierError:
        raise AssertionError(failures) from None
    time.sleep(1.0)  # ten flushes of the write-behind
    servers[0].kill()
    for client in clients:
        client.join(30)

    [(used,)] = query(data, "SELECT sum(requests) FROM usage_daily")
    statuses = [s for (s,) in query(data, "SELECT status FROM request_log")]
    leaves = query(
        data,
        "SELECT m.role, m.content FROM conversations c "
        "JOIN messages m ON m.id = c.current_leaf_id ORDER BY m.content",
    )
    [(replies,)] = query(data, "SELECT count(*) FROM messages WHERE role = 'assistant'")
    assert used == STREAMS
    assert statuses == ["in_flight"] * STREAMS
    assert sorted(content for _, content in leaves) == sorted(
        f"question {n} about crashes" for n in range(STREAMS)
    )
    assert {role for role, _ in leaves} == {"user"}
    assert replies == 0  # partial replies are what a crash loses

    servers.append(Server(data, port))
    api = openai.OpenAI(base_url=servers[1].url + "/v1", api_key=key, max_retries=0)
    for _ in range(DAILY - STREAMS):
        api.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError):
        api.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])

    young = chatgate(data, "usage", "reconcile", "--older-than", "3600")
    assert young.stdout.startswith("0 request(s)"), young.stdout  # none began an hour ago
    servers[1].terminate()  # its own requests are settled and written; only the crash's are left
    settled = chatgate(data, "usage", "reconcile")
    assert settled.returncode == 0, settled.stderr
    assert f"{STREAMS} request(s)" in settled.stdout
    counted = query(
        data, "SELECT status, counted, count(*) FROM request_log GROUP BY status, counted"
    )
    assert sorted(counted) == [
        ("interrupted", 1, STREAMS),
        ("ok", 1, DAILY - STREAMS),
        ("refused", 0, 1),  # the 429 past the cap is logged, not counted
    ]
