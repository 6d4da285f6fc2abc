"""Real servers on free ports, in threads, for tests that talk over real sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn

from chatgate.app import create_app
from chatgate.core.clock import Clock
from chatgate.services import Services
from chatgate.settings import Settings

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """Runs an ASGI app under uvicorn in a thread with its own event loop."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.config = uvicorn.Config(
            app,
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
        self.loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())
        self.loop.close()

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server thread died while starting")
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start")
            time.sleep(0.01)
        return self

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

    def user(self, name: str, password: str | None = None, *, admin: bool = False) -> None:
        self.run(
            self.services.accounts.create_user(name, password, role="admin" if admin else "user")
        )

    def key(self, name: str, **kwargs: Any) -> str:
        """A fresh key for ``name``, creating the user on first use."""

        async def make() -> str:
            await self.services.accounts.ensure_user(name)
            plain, _ = await self.services.accounts.create_key(name, **kwargs)
            return plain

        return self.run(make())

    def flush(self) -> None:
        self.run(self.services.writer.flush())
