"""Failed logins are limited in total, not per process: two ``chatgate serve`` processes sharing
a database and Redis count the same failures, per user name and per client address, and
parallel guesses on both cannot slip past the limit (each is counted before its password is
checked, in one Redis script)."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_process import REDIS, Serve, redis_prefix, serve_env
from support import remember

PASSWORD = remember("juniper-Falcon-5530")
MAX_FAILURES = 4


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[Serve, Serve]]:
    """Two servers on one database (as on one machine) and one Redis, allowing 4 failures,
    with sign-up by invite."""
    env = serve_env(
        tmp_path / "data",
        redis_url=REDIS,
        redis_prefix=redis_prefix(),
        login_max_failures=str(MAX_FAILURES),
        login_window_seconds="600",
        signup="invite",
    )
    created = subprocess.run(
        [sys.executable, "-m", "chatgate", "users", "create", "alice", "--password-stdin"],
        env=env,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    servers = [Serve(env, tmp_path / f"serve-{n}.log", "--grpc-port", "0") for n in (1, 2)]
    try:
        for server in servers:
            server.wait_ready()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


def login(server: Serve, name: str, password: str, source: str = "127.0.0.1") -> int:
    """The status of a login from ``source`` (any 127.x.y.z reaches the server)."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=60) as client:
        answer = client.post(
            server.url + "/api/v1/auth/login", json={"username": name, "password": password}
        )
    return answer.status_code


@pytest.mark.timeout(400)  # two servers start, on a busy machine too
def test_failed_logins_spread_over_two_servers_are_refused_after_the_limit_in_total(
    two_servers: tuple[Serve, Serve],
) -> None:
    one, two = two_servers
    alternate = itertools.cycle((one, two))

    # Per user name: guesses from addresses of their own, taking turns between the servers.
    codes = [
        login(next(alternate), "alice", f"guess-{i}", source=f"127.0.0.{10 + i}")
        for i in range(MAX_FAILURES + 1)
    ]
    assert codes == [401] * MAX_FAILURES + [429]
    # The right password too, on either server, from an address that never failed.
    assert login(one, "alice", PASSWORD, source="127.0.0.50") == 429
    assert login(two, "alice", PASSWORD, source="127.0.0.51") == 429

    # Per address: a different name each time, all from one address, on both servers.
    codes = [
        login(next(alternate), f"someone-{i}", PASSWORD, source="127.0.0.60")
        for i in range(MAX_FAILURES + 1)
    ]
    assert codes == [401] * MAX_FAILURES + [429]
    assert login(one, "someone-else", PASSWORD, source="127.0.0.60") == 429
    assert login(two, "someone-else", PASSWORD, source="127.0.0.60") == 429
    # Another address is not held back by that one's failures.
    assert login(two, "someone-else", PASSWORD, source="127.0.0.61") == 401


async def _guesses_at_once(servers: tuple[Serve, Serve], count: int) -> list[int]:
    """``count`` wrong passwords for bob from as many addresses, half to each server."""
    start = asyncio.Event()

    async def one(n: int) -> int:
        transport = httpx.AsyncHTTPTransport(local_address=f"127.0.1.{n + 1}")
        async with httpx.AsyncClient(transport=transport, timeout=120) as client:
            await start.wait()
            answer = await client.post(
                servers[n % 2].url + "/api/v1/auth/login",
                json={"username": "bob", "password": f"guess-{n}"},
            )
            return answer.status_code

    tasks = [asyncio.create_task(one(n)) for n in range(count)]
    await asyncio.sleep(0.5)
    start.set()
    return await asyncio.gather(*tasks)


@pytest.mark.timeout(400)
def test_parallel_guesses_on_two_servers_cannot_exceed_the_limit(
    two_servers: tuple[Serve, Serve],
) -> None:
    statuses = asyncio.run(_guesses_at_once(two_servers, 12))
    assert Counter(statuses) == {401: MAX_FAILURES, 429: 12 - MAX_FAILURES}


@pytest.mark.timeout(400)
def test_invite_codes_guessed_on_two_servers_are_refused_after_the_limit_in_total(
    two_servers: tuple[Serve, Serve],
) -> None:
    servers = itertools.cycle(two_servers)
    codes = []
    for n in range(MAX_FAILURES + 2):
        body = {"username": f"guess{n}", "password": PASSWORD, "invite": f"inv-guess-{n}"}
        with httpx.Client(timeout=60) as client:
            codes.append(client.post(next(servers).url + "/api/v1/auth/signup", json=body))
    assert [c.status_code for c in codes] == [403] * MAX_FAILURES + [429, 429]
    assert codes[-1].json()["error"]["code"] == "too_many_attempts"
