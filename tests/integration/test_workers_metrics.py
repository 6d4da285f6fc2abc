"""``/metrics`` of ``chatgate serve --workers 2`` shows the whole service: requests served by
either worker are counted in every scrape, whichever worker answers it, and still once a worker
has died and been replaced; the workers' shared directory is private and goes with the server,
even one whose parent was killed."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serve_process import REDIS, Serve, chatgate, redis_prefix, serve_env
from support import remember

ACCESS = re.compile(r"chatgate\.access \(worker (\d), pid (\d+)\) \[[^\]]+\]: (\w+) (\S+) (\d+)")
STARTED = re.compile(r"\(worker (\d), pid (\d+)\).*Started server process")
OK = ("chatgate_requests_total", (("model", "demo"), ("status", "ok")))
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[Serve, str]]:
    """``serve --workers 2`` with an access log (which names the worker), and a key."""
    env = serve_env(
        tmp_path / "data",
        redis_url=REDIS,
        redis_prefix=redis_prefix(),
        access_log="true",
        default_daily_requests="100000",
    )
    chatgate(env, "users", "create", "alice")
    key = remember(chatgate(env, "keys", "create", "--user", "alice").strip())
    server = Serve(env, tmp_path / "serve.log", "--workers", "2", "--grpc-port", "0")
    try:
        server.wait_ready()
        yield server, key
    finally:
        server.stop()


def served_by(server: Serve, method: str, path: str) -> list[str]:
    """The workers that answered each ``method path`` so far, in order."""
    log = "\n".join(server.lines())
    return [w for w, _, m, p, _ in ACCESS.findall(log) if (m, p) == (method, path)]


async def _requests(url: str, key: str, count: int) -> list[int]:
    """``count`` chat requests at once, each on a connection of its own (so the kernel hands
    them to both workers)."""
    body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    start = asyncio.Event()

    async def one() -> int:
        async with httpx.AsyncClient(timeout=120) as client:
            await start.wait()
            answer = await client.post(
                url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
            )
            return answer.status_code

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    await asyncio.sleep(0.3)
    start.set()
    return await asyncio.gather(*tasks)


def serve_on_both(server: Serve, key: str) -> int:
    """Send requests in rounds of 10 until both workers have served some; how many were sent."""
    sent = 0
    while len(set(served_by(server, "POST", "/v1/chat/completions"))) < 2:
        assert sent < 200, "the kernel gave every connection to one worker"
        assert asyncio.run(_requests(server.url, key, 10)) == [200] * 10
        sent += 10
        time.sleep(0.2)  # the access log lines are written
    return sent


def scrape(server: Serve) -> Samples:
    answer = httpx.get(server.url + "/metrics", timeout=30)  # a connection of its own
    assert answer.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def scrape_both(server: Serve) -> list[Samples]:
    """Scrapes until both workers have answered one (and at least six)."""
    scrapes: list[Samples] = []
    before = len(served_by(server, "GET", "/metrics"))
    while len(scrapes) < 6 or len(set(served_by(server, "GET", "/metrics")[before:])) < 2:
        assert len(scrapes) < 200, "the kernel gave every scrape to one worker"
        scrapes.append(scrape(server))
        time.sleep(0.05)
    return scrapes


def metrics_directory(pid: int) -> Path:
    """Where a worker keeps its metrics, as its environment names it."""
    environment = Path(f"/proc/{pid}/environ").read_text().split("\0")
    return Path(dict(e.split("=", 1) for e in environment if "=" in e)["PROMETHEUS_MULTIPROC_DIR"])


def worker_pids(server: Serve) -> dict[str, int]:
    """The pid of each worker, the latest started."""
    return {w: int(pid) for w, pid in STARTED.findall("\n".join(server.lines()))}


@pytest.mark.timeout(600)  # three processes start, on a busy machine too
def test_every_scrape_counts_the_requests_of_both_workers(workers: tuple[Serve, str]) -> None:
    server, key = workers
    sent = serve_on_both(server, key)

    for seen in scrape_both(server):
        assert seen[OK] == sent
        assert seen["chatgate_first_token_seconds_count", ()] == sent
        assert seen["chatgate_tokens_total", (("direction", "prompt"), ("model", "demo"))] > 0
        assert ("chatgate_writer_queue", ()) in seen  # one value for the service, no pid


@pytest.mark.timeout(600)
def test_a_dead_workers_requests_stay_counted_and_its_files_go_with_the_server(
    workers: tuple[Serve, str],
) -> None:
    server, key = workers
    pids = worker_pids(server)
    directory = metrics_directory(pids["1"])
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    sent = serve_on_both(server, key)
    assert {scrape(server)[OK] for _ in range(4)} == {sent}
    assert f"gauge_livesum_{pids['1']}.db" in {path.name for path in directory.iterdir()}

    os.kill(pids["1"], signal.SIGKILL)
    deadline = time.monotonic() + 120
    while worker_pids(server)["1"] == pids["1"]:
        assert time.monotonic() < deadline, "\n".join(server.lines())
        time.sleep(0.2)
    live = {path.name for path in directory.iterdir()}
    assert f"counter_{pids['1']}.db" in live  # what it served still counts
    assert f"gauge_livesum_{pids['1']}.db" not in live  # its writer's queue does not
    for seen in scrape_both(server):
        assert seen[OK] == sent

    server.stop()
    assert server.proc.returncode == 0
    assert not directory.exists()


@pytest.mark.timeout(600)
def test_the_workers_remove_the_metrics_directory_when_their_parent_is_killed(
    workers: tuple[Serve, str],
) -> None:
    server, _ = workers
    pids = worker_pids(server)
    directory = metrics_directory(pids["0"])
    assert directory.is_dir()
    server.kill()
    deadline = time.monotonic() + 120
    while any(Path(f"/proc/{pid}").exists() for pid in pids.values()):
        assert time.monotonic() < deadline, "\n".join(server.lines())
        time.sleep(0.2)
    assert not directory.exists()
