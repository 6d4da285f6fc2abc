"""The processes under test: the fake upstream and the gateway, each a subprocess of its own,
with their CPU time and memory read from ``/proc``."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env() -> dict[str, str]:
    """The environment for child processes: this checkout first, no stray chatgate settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CHATGATE_") and k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")
    }
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Proc:
    """A child process listening on ``port``, with its log in ``log``."""

    def __init__(self, name: str, argv: list[str], port: int, env: dict[str, str], log: Path):
        self.name = name
        self.port = port
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def pids(self) -> list[int]:
        """The process and its children (the workers of ``chatgate serve --workers``)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        found = [self.pid]
        if children.exists():
            found += [int(pid) for pid in children.read_text().split()]
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process and its running children so far."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / _TICK

    def rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except FileNotFoundError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total / 1024

    async def wait_logged(self, text: str, within: float = 120.0) -> None:
        """Wait for ``text`` in the process's log."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} never logged {text!r}")

    async def wait_ready(self, path: str, within: float = 60.0) -> None:
        url = f"http://127.0.0.1:{self.port}{path}"
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.popen.poll() is not None:
                    break
                try:
                    async with session.get(url) as resp:
                        if resp.status < 500:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        tail = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{self.name} did not start; its log ends with:\n{tail}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_upstream(kind: str, interval: float, workdir: Path, pieces: int = 50) -> Proc:
    """The lean upstream of ``bench/upstream.py`` (``pieces`` to a reply that names no
    ``max_tokens``), or ``chatgate demo-upstream``."""
    port = free_port()
    if kind == "demo":
        argv = [sys.executable, "-m", "chatgate", "demo-upstream", "--port", str(port)]
    else:
        argv = [sys.executable, "-m", "bench.upstream", "--port", str(port)]
        argv += ["--interval", str(interval), "--pieces", str(pieces)]
    return Proc(f"upstream ({kind})", argv, port, base_env(), workdir / f"upstream-{kind}.log")


def chatgate_cli(env: dict[str, str], *args: str) -> str:
    """Run one ``chatgate`` admin command against the benchmark's data dir; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "chatgate", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(f"chatgate {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip()


def gateway_env(data_dir: Path, upstream: Proc, **settings: str) -> dict[str, str]:
    env = base_env()
    env.update(
        {
            "CHATGATE_DATA_DIR": str(data_dir),
            "CHATGATE_GRPC_PORT": "0",
            "CHATGATE_LOG_LEVEL": "warning",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{upstream.port}/v1",
            "OPENAI_API_KEY": "bench-upstream-key",
        }
    )
    env.update({f"CHATGATE_{k.upper()}": v for k, v in settings.items()})
    return env


def start_gateway(env: dict[str, str], client: str, workdir: Path, name: str = "") -> Proc:
    """``chatgate serve`` (uvloop, httptools, one worker) with the chosen upstream client;
    ``name`` tells its log apart from another gateway's with the same client."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.gateway", "--client", client]
    argv += ["serve", "--port", str(port)]
    label = f"{client}-{name}" if name else client
    return Proc(f"gateway ({label})", argv, port, env, workdir / f"gateway-{label}.log")
