from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import databases
import pytest
from support import (
    LOG_LINES,
    Gateway,
    ServerThread,
    WatchedUpstream,
    collecting_factory,
    leaked_secrets,
)

from chatgate.demo_upstream import DemoUpstream
from chatgate.settings import Settings

_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL")


@pytest.fixture(scope="session")
def _postgres() -> Iterator[databases.PostgresDatabases | None]:
    """The PostgreSQL databases of the run, when the suite runs on PostgreSQL."""
    if databases.BACKEND != "postgresql":
        yield None
        return
    pool = databases.PostgresDatabases()
    pool.start()
    yield pool
    pool.close()


@pytest.fixture(scope="module", autouse=True)
def _module_database(_postgres: databases.PostgresDatabases | None) -> Iterator[None]:
    """On PostgreSQL, a database for what a module starts once for all its tests."""
    if _postgres is None:
        yield
        return
    url = _postgres.take()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHATGATE_DATABASE_URL", url)
        yield
    _postgres.give_back(url)


@pytest.fixture(autouse=True)
def _clean_env(
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    _postgres: databases.PostgresDatabases | None,
) -> Iterator[None]:
    """Tests build their settings explicitly; nothing leaks in from the machine. On
    PostgreSQL each test's settings (and the processes it starts) get a database of its own;
    tests marked ``sqlite`` are about SQLite's own files and use it either way."""
    import os

    for name in list(os.environ):
        if name.startswith("CHATGATE_") or name in _ENV:
            monkeypatch.delenv(name)
    if _postgres is None or request.node.get_closest_marker("sqlite"):
        yield
        return
    url = _postgres.take()
    monkeypatch.setenv("CHATGATE_DATABASE_URL", url)
    yield
    _postgres.give_back(url)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "port": 0,
            "demo_chunk_delay": 0.0,
            "grpc_port": 0,
            "usage_flush_seconds": 0.05,
            "default_daily_requests": None,
        }
        values.update(overrides)
        return Settings.load(**values)

    return make


@pytest.fixture
def make_gateway(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def make(clock: Any = None, **overrides: Any) -> Gateway:
        gateway = Gateway(make_settings(**overrides), clock=clock).start()
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        gateway.stop()


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    """chatgate serving the in-process demo model."""
    return make_gateway()


@pytest.fixture
def demo_upstream() -> Iterator[ServerThread]:
    """``chatgate demo-upstream`` as a real HTTP server, recording what it receives."""
    server = ServerThread(DemoUpstream(record=True)).start()
    yield server
    server.stop()


@pytest.fixture
def proxied_gateway(make_gateway: Callable[..., Gateway], demo_upstream: ServerThread) -> Gateway:
    """chatgate in front of the demo model served over HTTP (the OpenAI-compatible provider)."""
    return make_gateway(openai_base_url=demo_upstream.url + "/v1", openai_api_key="upstream-key")


@pytest.fixture
def watched_upstream() -> Iterator[ServerThread]:
    """A demo upstream that streams a word every 50 ms and notes the clients that hang up."""
    server = ServerThread(WatchedUpstream(delay=0.05)).start()
    yield server
    server.stop()


@pytest.fixture
def slow_gateway(make_gateway: Callable[..., Gateway], watched_upstream: ServerThread) -> Gateway:
    """chatgate in front of ``watched_upstream``, for tests that cut a reply half-way."""
    return make_gateway(openai_base_url=watched_upstream.url + "/v1", openai_api_key="k")


def pytest_configure(config: pytest.Config) -> None:
    """Keep every log line of the run, at debug level for chatgate, to check for secrets."""
    logging.setLogRecordFactory(collecting_factory(logging.getLogRecordFactory()))
    logging.getLogger("chatgate").setLevel(logging.DEBUG)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = leaked_secrets(LOG_LINES)
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"SECRETS IN LOG OUTPUT: {len(leaks)} password/key/token value(s) were logged",
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
