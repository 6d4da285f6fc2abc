"""The quota scripts' own Redis connection, against a real Redis (skipped, with the reason,
when none answers at 127.0.0.1:6379): replies in order, the URL's database, errors as
redis-py raises them, and a lost connection made again on the next call."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from chatgate.core.redis_lane import RedisLane

URL = "redis://127.0.0.1:6379/3"


@pytest.fixture
async def lane() -> AsyncIterator[RedisLane]:
    client = aioredis.from_url(URL)
    try:
        await client.ping()
    except OSError:
        pytest.skip("no Redis server at 127.0.0.1:6379")
    finally:
        await client.aclose()
    opened = RedisLane(URL)
    yield opened
    opened.close()


async def test_replies_come_back_in_order_from_the_urls_database(lane: RedisLane) -> None:
    key = f"test-lane-{secrets.token_hex(6)}"
    replies = await lane.pipeline([("SET", key, "a"), ("INCR", f"{key}:n"), ("GET", key)])
    assert replies == ["OK", 1, "a"]
    other = aioredis.from_url(URL, decode_responses=True)
    try:
        assert await other.get(key) == "a"  # database 3, as the URL says
        await other.delete(key, f"{key}:n")
    finally:
        await other.aclose()


async def test_refusals_raise_as_redis_py_does(lane: RedisLane) -> None:
    with pytest.raises(NoScriptError):
        await lane.pipeline([("EVALSHA", "0" * 40, 0)])
    with pytest.raises(ResponseError):
        await lane.pipeline([("NOSUCHCOMMAND",)])
    assert await lane.pipeline([("PING",)]) == ["PONG"]


async def test_a_lost_connection_is_made_again_on_the_next_call(lane: RedisLane) -> None:
    (me,) = await lane.pipeline([("CLIENT", "ID")])
    killer = aioredis.from_url(URL)
    try:
        await killer.execute_command("CLIENT", "KILL", "ID", me)
    finally:
        await killer.aclose()
    # Either on a new connection already, or the loss is noticed by the call waiting on it.
    with contextlib.suppress(RedisConnectionError):
        assert await lane.pipeline([("PING",)]) == ["PONG"]
    (again,) = await lane.pipeline([("CLIENT", "ID")])
    assert again != me


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Path]:
    """A Redis of its own on a unix socket, with a password."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    sock = tmp_path / "r.sock"
    argv = ["redis-server", "--port", "0", "--unixsocket", str(sock), "--requirepass", "s3cret"]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        yield sock
    finally:
        server.terminate()
        server.wait(timeout=10)


async def test_a_unix_socket_with_a_password_and_a_database(private_redis: Path) -> None:
    lane = RedisLane(f"unix://:s3cret@{private_redis}?db=2")
    try:
        stored, info = await lane.pipeline([("SET", "k", "v"), ("CLIENT", "INFO")])
        assert stored == "OK"
        assert " db=2 " in info
    finally:
        lane.close()
    refused = RedisLane(f"unix://:wrong@{private_redis}")
    with pytest.raises(ResponseError):
        await refused.pipeline([("PING",)])
    refused.close()
