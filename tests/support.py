"""Real servers on free ports, in threads, for tests that talk over real sockets."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx
import uvicorn

from chatgate.app import create_app
from chatgate.core.clock import Clock
from chatgate.services import Services
from chatgate.settings import Settings

T = TypeVar("T")

# Every password, key and token a test uses; the run's log output must contain none of them.
SECRETS: set[str] = set()


def remember(secret: str) -> str:
    SECRETS.add(secret)
    return secret


# ---- every log record of the run, to prove no secret ever reaches a log line -----------------

LOG_LINES: list[str] = []
_FORMAT = logging.Formatter("%(name)s %(levelname)s %(message)s")
# Any chatgate key or JWT, whether or not a test remembered it.
SECRET_PATTERN = re.compile(r"sk-cg-[A-Za-z0-9_-]{16,}|eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")


def collecting_factory(previous: Callable[..., logging.LogRecord]) -> Callable[..., Any]:
    """A record factory sees every record made, whatever handlers and propagation say."""

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            LOG_LINES.append(_FORMAT.format(record))
        except Exception as exc:  # a bad format string is the caller's bug; keep what we can
            LOG_LINES.append(f"{record.name} {record.msg!r} {record.args!r} ({exc!r})")
        return record

    return factory


def leaked_secrets(lines: list[str]) -> list[str]:
    text = "\n".join(lines)
    found = [s for s in SECRETS if s and s in text]
    return found + SECRET_PATTERN.findall(text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """Runs an ASGI app under uvicorn in a thread with its own event loop."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.fixed_port = port is not None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._prepare(port or free_port())

    def _prepare(self, port: int) -> None:
        self.port = port
        self.config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            loop="asyncio",
            http="httptools",
            access_log=False,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.failure: BaseException | None = None

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve())
        except BaseException as exc:  # uvicorn exits when it cannot bind
            self.failure = exc
        finally:
            self.loop.close()

    def start(self) -> ServerThread:
        """Start, trying another free port when another process took the chosen one."""
        for _ in range(3):
            self.thread.start()
            deadline = time.monotonic() + 30
            while not self.server.started:
                if not self.thread.is_alive():
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("the server did not start")
                time.sleep(0.01)
            if self.server.started:
                return self
            if self.fixed_port or not isinstance(self.failure, SystemExit):
                break
            self._prepare(free_port())
        raise RuntimeError(f"the server thread died while starting: {self.failure!r}")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the server's own loop (to reach its services) and wait for it."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


class Gateway(ServerThread):
    """A live chatgate with helpers to make users and keys in its own database."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        super().__init__(create_app(settings, clock=clock), port=settings.port or None)

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def grpc_target(self) -> str:
        """Where gRPC listens (start the gateway with ``grpc_port=free_port()``)."""
        return f"127.0.0.1:{self.settings.grpc_port}"

    def user(self, name: str, password: str | None = None, *, admin: bool = False) -> None:
        if password:
            remember(password)
        self.run(
            self.services.accounts.create_user(name, password, role="admin" if admin else "user")
        )

    def key(self, name: str, **kwargs: Any) -> str:
        """A fresh key for ``name``, creating the user on first use."""

        async def make() -> str:
            await self.services.accounts.ensure_user(name)
            plain, _ = await self.services.accounts.create_key(name, **kwargs)
            return plain

        return remember(self.run(make()))

    def login(self, name: str, password: str) -> str:
        """A login token for ``name`` from ``POST /api/v1/auth/login``."""
        response = httpx.post(
            self.url + "/api/v1/auth/login", json={"username": name, "password": password}
        )
        response.raise_for_status()
        return remember(response.json()["token"])

    def flush(self) -> None:
        self.run(self.services.writer.flush())

    def stored_messages(self) -> list[Any]:
        """Every stored conversation message (``StoredMessage``), oldest first."""
        from sqlalchemy import select

        from chatgate.store.tables import StoredMessage

        self.flush()

        async def rows() -> list[Any]:
            async with self.services.db.session() as session:
                query = select(StoredMessage).order_by(StoredMessage.created_at)
                return list((await session.scalars(query)).all())

        return self.run(rows())

    def request_log(self) -> list[Any]:
        """Every ``RequestLog`` row, oldest first, once pending writes are flushed."""
        from sqlalchemy import select

        from chatgate.store.tables import RequestLog

        self.flush()

        async def rows() -> list[Any]:
            async with self.services.db.session() as session:
                query = select(RequestLog).order_by(RequestLog.id)
                return list((await session.scalars(query)).all())

        return self.run(rows())


class WatchedUpstream:
    """The demo upstream, noting each streamed reply its client hung up on before the end.

    ``hangups`` counts them; ``wait_hangups(n)`` lets a test wait for the gateway to have
    dropped its upstream calls.
    """

    def __init__(self, delay: float = 0.0) -> None:
        from chatgate.demo_upstream import DemoUpstream

        self.inner = DemoUpstream(delay=delay, record=True)
        self.hangups = 0
        self._changed = threading.Condition()

    def wait_hangups(self, count: int = 1, timeout: float = 10) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.hangups >= count, timeout)

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.inner.requests

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        body_read = asyncio.Event()
        finished = False

        async def inner_receive() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            if not message.get("more_body"):
                body_read.set()
            return message

        async def inner_send(message: dict[str, Any]) -> None:
            nonlocal finished
            if message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        async def watch() -> None:
            await body_read.wait()
            message = await receive()
            if message["type"] == "http.disconnect" and not finished:
                with self._changed:
                    self.hangups += 1
                    self._changed.notify_all()
                app.cancel()

        app = asyncio.ensure_future(self.inner(scope, inner_receive, inner_send))
        watcher = asyncio.ensure_future(watch())
        try:
            await app
        except asyncio.CancelledError:
            pass
        finally:
            watcher.cancel()
