"""One streamed reply over each transport: SSE, the native WebSocket and gRPC, side by side.

Starts ``chatgate serve`` (in-process demo model, no pause between words, so what is measured
is the gateway and the transport) as a subprocess, then for each transport and concurrency runs
the same requests and reports time to first token (send to first piece of text), pieces per
second over the whole run, and the gateway's CPU milliseconds per reply. Every reply is checked
(its text and its end). Run it from the repository root:

    python bench/transports.py [--requests 320] [--concurrency 1 32] [--delay 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatgate.transports.protos import chatgate_v1_pb2, chatgate_v1_pb2_grpc  # noqa: E402

QUESTION = "How do transports compare?"
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    ttft_ms: list[float] = field(default_factory=list)
    pieces: int = 0
    failures: int = 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gateway:
    """``chatgate serve`` in a subprocess with a fresh data directory and one unlimited key."""

    def __init__(self, delay: float) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="chatgate-bench-")
        self.port, self.grpc_port = free_port(), free_port()
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("CHATGATE_", "OPENAI_"))
        }
        self.env.update(
            PYTHONPATH=str(ROOT),
            CHATGATE_DATA_DIR=self.dir.name,
            CHATGATE_DEMO_CHUNK_DELAY=str(delay),
            CHATGATE_LOG_LEVEL="warning",
        )
        self.key = self._key()
        argv = [sys.executable, "-m", "chatgate", "serve", "--port", str(self.port)]
        argv += ["--grpc-port", str(self.grpc_port)]
        self.log = Path(self.dir.name) / "serve.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=out, cwd=ROOT)

    def _cli(self, *args: str) -> str:
        argv = [sys.executable, "-m", "chatgate", *args]
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, check=True)
        return done.stdout

    def _key(self) -> str:
        self._cli("users", "create", "bench")
        self._cli("users", "set-quota", "bench", "--daily-requests", "-1")
        out = self._cli("keys", "create", "--user", "bench")
        return next(w for w in out.split() if w.startswith("sk-cg-"))

    async def ready(self) -> None:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("the gateway did not start:\n" + self.log.read_text()[-2000:])

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.dir.cleanup()


# ---- one streamed reply per transport -------------------------------------------------------


async def sse_worker(gw: Gateway, jobs: asyncio.Queue[int], run: Run) -> None:
    url = f"http://127.0.0.1:{gw.port}/v1/chat/completions"
    body = {"model": "demo", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    headers = {"Authorization": f"Bearer {gw.key}"}
    async with aiohttp.ClientSession() as session:
        while not jobs.empty():
            jobs.get_nowait()
            started, first, text, done = time.perf_counter(), None, [], False
            async with session.post(url, json=body, headers=headers) as resp:
                async for line in resp.content:
                    if not line.startswith(b"data: "):
                        continue
                    if line.startswith(b"data: [DONE]"):
                        done = True
                        break
                    choices = json.loads(line[6:]).get("choices") or [{}]
                    piece = (choices[0].get("delta") or {}).get("content")
                    if piece:
                        first = first or time.perf_counter()
                        text.append(piece)
            record(run, started, first, text, done)


async def ws_worker(gw: Gateway, jobs: asyncio.Queue[int], run: Run) -> None:
    url = f"ws://127.0.0.1:{gw.port}/api/v1/ws"
    async with connect(url, additional_headers={"Authorization": f"Bearer {gw.key}"}) as ws:
        while not jobs.empty():
            n = jobs.get_nowait()
            frame = {"type": "chat", "id": n, "model": "demo", "prompt": QUESTION}
            started, first, text = time.perf_counter(), None, []
            await ws.send(json.dumps(frame))
            while (event := json.loads(await ws.recv()))["type"] == "delta":
                first = first or time.perf_counter()
                text.append(event["text"])
            record(run, started, first, text, event["type"] == "done")


async def grpc_worker(
    stub: chatgate_v1_pb2_grpc.ChatgateStub, gw: Gateway, jobs: asyncio.Queue[int], run: Run
) -> None:
    request = chatgate_v1_pb2.ChatRequest(model="demo", prompt=QUESTION)
    metadata = (("authorization", f"Bearer {gw.key}"),)
    while not jobs.empty():
        jobs.get_nowait()
        started, first, text, done = time.perf_counter(), None, [], False
        async for event in stub.Chat(request, metadata=metadata):
            if event.HasField("delta"):
                first = first or time.perf_counter()
                text.append(event.delta.text)
            done = event.HasField("done")
        record(run, started, first, text, done)


def record(run: Run, started: float, first: float | None, text: list[str], done: bool) -> None:
    if first is None or not done or f'You asked: "{QUESTION}"' not in "".join(text):
        run.failures += 1
        return
    run.ttft_ms.append((first - started) * 1000)
    run.pieces += len(text)


# ---- running and reporting ------------------------------------------------------------------


async def measure(gw: Gateway, name: str, requests: int, concurrency: int) -> dict[str, float]:
    jobs: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        jobs.put_nowait(n)
    run = Run()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}")
    stub = chatgate_v1_pb2_grpc.ChatgateStub(channel)
    workers: dict[str, Callable[[], Awaitable[None]]] = {
        "SSE": lambda: sse_worker(gw, jobs, run),
        "WebSocket": lambda: ws_worker(gw, jobs, run),
        "gRPC": lambda: grpc_worker(stub, gw, jobs, run),
    }
    cpu, wall = gw.cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(workers[name]() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, gw.cpu_seconds() - cpu
    await channel.close()
    ttft = sorted(run.ttft_ms) or [0.0]
    return {
        "replies": len(run.ttft_ms),
        "failures": run.failures,
        "ttft_p50_ms": statistics.median(ttft),
        "ttft_p95_ms": ttft[int(len(ttft) * 0.95) - 1] if len(ttft) > 1 else ttft[0],
        "pieces_per_s": run.pieces / wall,
        "replies_per_s": len(run.ttft_ms) / wall,
        "cpu_ms_per_reply": cpu * 1000 / max(1, len(run.ttft_ms)),
    }


async def main(args: argparse.Namespace) -> None:
    gw = Gateway(args.delay)
    try:
        await gw.ready()
        for name in ("SSE", "WebSocket", "gRPC"):
            await measure(gw, name, 8, 2)  # warm up connections and code paths
        print(
            "| transport | c | replies | failed | TTFT p50 ms | TTFT p95 ms | pieces/s | "
            "replies/s | gateway CPU ms/reply |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for concurrency in args.concurrency:
            requests = max(args.requests if concurrency > 1 else args.requests // 4, concurrency)
            for name in ("SSE", "WebSocket", "gRPC"):
                r = await measure(gw, name, requests, concurrency)
                print(
                    f"| {name} | {concurrency} | {r['replies']:.0f} | {r['failures']:.0f} | "
                    f"{r['ttft_p50_ms']:.2f} | {r['ttft_p95_ms']:.2f} | {r['pieces_per_s']:.0f} | "
                    f"{r['replies_per_s']:.1f} | {r['cpu_ms_per_reply']:.2f} |",
                    flush=True,
                )
    finally:
        gw.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=320, help="replies per transport at c>1")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between demo words")
    asyncio.run(main(parser.parse_args()))
