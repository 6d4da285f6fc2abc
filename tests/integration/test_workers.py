"""``chatgate serve --workers 2``: two processes on one port that keep quotas exact between
them (through Redis), on PostgreSQL and on SQLite, and continue each other's conversations;
and no second worker without Redis."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from serve_process import Serve, chatgate, postgres_database, redis_prefix, serve_env
from support import free_port, remember

ACCESS = re.compile(r"chatgate\.access \(worker (\d), pid (\d+)\) \[[^\]]+\]: (\w+) (\S+) (\d+)")


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {}
        return
    with postgres_database() as url:
        yield {"database_url": url}


async def _all_at_once(url: str, key: str, count: int) -> list[int]:
    """``count`` chat requests, each on a connection of its own, released together."""
    body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    start = asyncio.Event()

    async def one() -> int:
        async with httpx.AsyncClient(timeout=120) as client:
            await start.wait()
            answer = await client.post(
                url + "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
            )
            return answer.status_code

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    await asyncio.sleep(0.5)
    start.set()
    return await asyncio.gather(*tasks)


@pytest.mark.timeout(600)  # three processes start, on a busy machine too
def test_forty_requests_at_once_against_a_cap_of_ten_get_ten_answers_from_two_workers(
    tmp_path: Path, database: dict[str, str]
) -> None:
    env = serve_env(
        tmp_path / "data",
        redis_url="redis://127.0.0.1:6379/0",
        redis_prefix=redis_prefix(),
        default_daily_requests="10",
        access_log="true",
        **database,
    )
    if database:
        chatgate(env, "db", "upgrade")
    chatgate(env, "users", "create", "alice")
    key = remember(chatgate(env, "keys", "create", "--user", "alice").strip())
    grpc_port = free_port()
    server = Serve(env, tmp_path / "serve.log", "--workers", "2", "--grpc-port", str(grpc_port))
    try:
        server.wait_ready()
        statuses = asyncio.run(_all_at_once(server.url, key, 40))
        assert Counter(statuses) == {200: 10, 429: 30}
        served = {
            (worker, status)
            for worker, _, method, path, status in ACCESS.findall("\n".join(server.lines()))
            if (method, path) == ("POST", "/v1/chat/completions")
        }
        # Both workers took requests, and their answers together are the cap.
        assert {worker for worker, _ in served} == {"0", "1"}, served
    finally:
        server.stop()
    lines = server.lines()
    assert server.proc.returncode == 0, "\n".join(lines)
    # Both workers served gRPC on the one port, the setup link was logged once, and both
    # stopped when the parent was told to.
    assert sum(f"gRPC listening on 127.0.0.1:{grpc_port}" in line for line in lines) == 2
    pids = {pid for _, pid, *_ in ACCESS.findall("\n".join(lines))}
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)
    assert sum("Finished server process" in line for line in lines) == 2


def _turn(url: str, key: str, conversation: str, text: str) -> dict[str, Any]:
    """One streamed turn on a connection of its own (the kernel picks the worker); the ids of
    its done event."""
    path = f"{url}/api/v1/conversations/{conversation}/messages"
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.stream("POST", path, json={"content": text}, headers=auth, timeout=60) as r:
        assert r.status_code == 200, r.read()
        lines = list(r.iter_lines())
    assert "event: done" in lines, lines
    data: dict[str, Any] = orjson.loads(
        lines[lines.index("event: done") + 1].removeprefix("data: ")
    )
    return data


def _answered_by(server: Serve, count: int) -> list[str]:
    """The workers that answered the first ``count`` turns, in order (from the access log)."""
    deadline = time.monotonic() + 30
    while True:
        workers = [
            worker
            for worker, _, method, path, _ in ACCESS.findall("\n".join(server.lines()))
            if method == "POST" and path.endswith("/messages")
        ]
        if len(workers) >= count or time.monotonic() > deadline:
            return workers


@pytest.mark.timeout(600)
def test_a_conversation_whose_turns_two_workers_take_in_turn_stays_one_straight_path(
    tmp_path: Path,
) -> None:
    env = serve_env(
        tmp_path / "data",
        redis_url="redis://127.0.0.1:6379/0",
        redis_prefix=redis_prefix(),
        access_log="true",
        default_daily_requests="100",
        demo_chunk_delay="0",
        conversation_titles="false",
    )
    chatgate(env, "users", "create", "alice")
    key = remember(chatgate(env, "keys", "create", "--user", "alice").strip())
    server = Serve(env, tmp_path / "serve.log", "--workers", "2", "--grpc-port", "0")
    try:
        server.wait_ready()
        conversation, previous, questions = "new", None, []
        # Until each worker has taken a turn after the other's at least twice (the kernel
        # hands each new connection to either).
        while len(questions) < 60:
            questions.append(f"question {len(questions)}")
            done = _turn(server.url, key, conversation, questions[-1])
            conversation = done["conversation_id"]
            tree = httpx.get(
                f"{server.url}/api/v1/conversations/{conversation}",
                headers={"Authorization": f"Bearer {key}"},
            ).json()
            parents = {m["id"]: m["parent_id"] for m in tree["messages"]}
            assert parents[done["parent_id"]] == previous
            assert parents[done["message_id"]] == done["parent_id"]
            assert len(parents) == 2 * len(questions)  # no branch, nothing lost
            previous = done["message_id"]
            workers = _answered_by(server, len(questions))
            switches = sum(a != b for a, b in itertools.pairwise(workers))
            if switches >= 4:
                break
        assert switches >= 4, workers
        assert tree["current_leaf_id"] == previous
    finally:
        server.stop()


def test_two_workers_without_redis_are_refused_in_one_line_naming_the_fix(
    tmp_path: Path,
) -> None:
    env = serve_env(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "chatgate", "serve", "--workers", "2", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    [line] = [line for line in done.stderr.splitlines() if line.strip()]
    assert "--workers 2 needs Redis" in line and "CHATGATE_REDIS_URL" in line


@pytest.mark.timeout(600)
def test_a_worker_that_dies_is_started_again(tmp_path: Path) -> None:
    env = serve_env(tmp_path, redis_url="redis://127.0.0.1:6379/0", redis_prefix=redis_prefix())
    server = Serve(env, tmp_path / "serve.log", "--workers", "2", "--grpc-port", "0")
    try:
        server.wait_ready()
        started = re.compile(r"\(worker (\d), pid (\d+)\).*Started server process")
        first = dict(started.findall("\n".join(server.lines())))
        os.kill(int(first["1"]), signal.SIGKILL)
        _wait_for(server, lambda: _count(server, "Application startup complete") == 3)
        again = started.findall("\n".join(server.lines()))
        assert len(again) == 3 and again[-1][0] == "1" and again[-1][1] != first["1"]
        assert server.get("/healthz").status_code == 200
    finally:
        server.stop()
    assert server.proc.returncode == 0


def _count(server: Serve, text: str) -> int:
    return sum(text in line for line in server.lines())


def _wait_for(server: Serve, ready: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    raise TimeoutError("\n".join(server.lines()))


@pytest.mark.timeout(600)
def test_workers_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    env = serve_env(tmp_path, redis_url="redis://127.0.0.1:6379/0", redis_prefix=redis_prefix())
    server = Serve(env, tmp_path / "serve.log", "--workers", "2", "--grpc-port", "0")
    try:
        server.wait_ready()
        started = re.compile(r"\(worker \d, pid (\d+)\).*Started server process")
        pids = [int(pid) for pid in started.findall("\n".join(server.lines()))]
        assert len(pids) == 2
        server.proc.kill()
        server.proc.wait(30)
        _wait_for(server, lambda: _count(server, "Finished server process") == 2)
        for pid in pids:
            _wait_for(server, lambda pid=pid: not _alive(pid))
    finally:
        server.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(600)
def test_workers_that_cannot_start_stop_the_parent_with_their_error(tmp_path: Path) -> None:
    certificate = tmp_path / "cert.pem"
    certificate.write_text("not a certificate\n")
    env = serve_env(tmp_path, redis_url="redis://127.0.0.1:6379/0", redis_prefix=redis_prefix())
    command = [sys.executable, "-m", "chatgate", "serve", "--workers", "2", "--grpc-port", "0"]
    command += ["--port", str(free_port()), "--ssl-certfile", str(certificate)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr
    assert "cannot use the TLS certificate or key" in done.stderr
    assert "could not start (exit code 1): stopping the others" in done.stderr
    assert "chatgate listening" not in done.stderr and "Traceback" not in done.stderr
